/** `topiary recipe-schema`: the JSON Schema of recipes for the plugins installed here (editor completion). */
import type { Command } from 'commander';
import { writeFileAtomic } from '@topiary/files';
import { recipeJsonSchema } from '@topiary/pipeline';
import { createRunContext, type GlobalOptions } from '../context.js';

export function registerRecipeSchema(program: Command, globals: () => GlobalOptions): void {
  program
    .command('recipe-schema')
    .description("Print the JSON Schema of recipes for the installed plugins (every stage kind, every pruner's options)")
    .addHelpText(
      'after',
      `
With --out FILE writes it there instead. Point your editor at it for completion and checking, e.g. with the YAML
language server: put "# yaml-language-server: $schema=./recipe.schema.json" on a recipe's first line.

Examples:
  $ topiary recipe-schema > recipe.schema.json
  $ topiary --out recipe.schema.json recipe-schema`,
    )
    .action(async () => {
      const g = globals();
      const run = await createRunContext({ ...g, json: false, quiet: true });
      try {
        const text = `${JSON.stringify(recipeJsonSchema(run.container), null, 2)}\n`;
        if (g.out) writeFileAtomic(g.out, text);
        else process.stdout.write(text);
      } finally {
        run.close();
      }
    });
}
