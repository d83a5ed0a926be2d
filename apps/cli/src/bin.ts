#!/usr/bin/env node
import { handleClosedPipes } from './pipes.js';
import { main } from './program.js';

// `topiary … | head`: a closed stdout ends the process quietly with status 0; a closed stderr is ignored (pipes.ts)
handleClosedPipes();
const code = await main(process.argv.slice(2));
process.exitCode = code;
