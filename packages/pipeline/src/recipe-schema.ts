/**
 * The JSON Schema of a recipe for the plugins installed in a run: the envelope (`recipeEnvelope`), and each stage
 * kind with its own options — the prune stage as one shape per installed pruner. Editors use it for completion
 * and checking (`topiary recipe-schema > recipe.schema.json`, then `# yaml-language-server: $schema=...`).
 */
import { optionsJsonSchema, recipeEnvelope, type DependencyContainer } from '@topiary/kernel';
import { installedStages } from './execute.js';

export function recipeJsonSchema(container: DependencyContainer): Record<string, unknown> {
  const envelope = optionsJsonSchema(recipeEnvelope) as { properties: Record<string, unknown>; [k: string]: unknown };
  const stageShapes = installedStages({ container }).map((stage) => {
    const options = stage.jsonSchema ? stage.jsonSchema(container) : withoutDialect(optionsJsonSchema(stage.options));
    return {
      type: 'object',
      title: stage.kind,
      description: stage.description,
      properties: { [stage.kind]: options },
      required: [stage.kind],
      additionalProperties: false,
    };
  });
  return {
    ...envelope,
    title: 'Topiary recipe',
    properties: {
      ...envelope.properties,
      stages: { type: 'array', minItems: 1, description: 'the stages, in order: each a mapping with exactly one stage kind', items: { oneOf: stageShapes } },
    },
  };
}

/** A sub-schema without its own `$schema` line (it sits inside another). */
export function withoutDialect(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}
