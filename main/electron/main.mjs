// Electron's entry point: the main process is TypeScript, run through tsx as `cnx` runs it (bin/cnx.mjs).
// The import is awaited at the top level: Electron emits `ready` only after the entry has resolved, and
// main.ts must register the app:// scheme before that.
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
