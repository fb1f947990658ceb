// `--engine torch` for the model commands: the PyTorch engine's reference.py computes the same outputs,
// written to a temporary folder and moved to where the user asked.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PythonNotFound, findPython } from '../torch-python.ts';
import { CliError } from './command.ts';

const REFERENCE = join(dirname(fileURLToPath(import.meta.url)), '..', 'torch', 'reference.py');

export const PYTHON_RULE = 'default $CNX_PYTHON, else the first Python found that imports torch: see cnx doctor';

/** The PyTorch engine's interpreter by the one rule (torch-python.ts), as a command's error when none is found. */
export function torchPython(option: string | undefined): string {
  try {
    return findPython({ option }).python;
  } catch (e) {
    throw e instanceof PythonNotFound ? new CliError(e.message) : e;
  }
}

export const ENGINE_HELP = `  --engine onnx|torch   the ONNX engine (default) or the PyTorch engine
  --python PATH         the PyTorch engine's interpreter (${PYTHON_RULE})
  --device cpu|cuda     PyTorch device (default cpu)`;

/** Runs reference.py `command` and copies its outputs (name in the out folder -> destination). */
export function viaTorch(command: 'infer' | 'grad' | 'fcmae' | 'features', args: readonly string[], outputs: Readonly<Record<string, string | undefined>>, o: { python?: string | undefined; device?: string | undefined }): void {
  const python = torchPython(o.python);
  const out = mkdtempSync(join(tmpdir(), 'cnx-torch-'));
  try {
    const r = spawnSync(python, [REFERENCE, command, ...args, '--out', out, ...(o.device ? ['--device', o.device] : [])], { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (r.error) throw new CliError(`cannot start the PyTorch engine with ${python}: ${r.error.message}`);
    if (r.status !== 0) throw new CliError(`the PyTorch engine failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join('\n')}`);
    for (const [name, dest] of Object.entries(outputs)) if (dest) copyFileSync(join(out, name), dest);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
