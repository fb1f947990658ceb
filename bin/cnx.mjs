#!/usr/bin/env node
// Entry point of the `cnx` command: runs the TypeScript sources through tsx.
import { runCnx } from './run-cnx.mjs';

process.exitCode = await runCnx(process.argv.slice(2));
