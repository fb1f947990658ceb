// `cnx doctor`: which engines and execution providers this machine has, and why others are missing.
import { spawnSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import * as ort from 'onnxruntime-node';
import { chooseProvider } from '../engine/runtime.ts';
import { jpegDecoder } from '../data/pipeline/native-jpeg.ts';
import { PythonNotFound, findPython, pythonCandidates } from '../torch-python.ts';
import { type Command, parseOptions } from './command.ts';

const HELP = `usage: cnx doctor [--json] [--python PATH]

Reports the ONNX engine (onnxruntime-node and its execution providers), the PyTorch engine (a Python
with torch: version, CUDA/MPS devices and memory) and the data loader's JPEG decoder. The interpreter is
--python, else CNX_PYTHON, else the first of ${pythonCandidates().join(', ')} that imports torch (doctor
searches again and refreshes the cached answer every other command uses).`;

const PROBE = `import json, sys
r = {"python": sys.version.split()[0]}
try:
    import torch
    r["torch"] = torch.__version__
    r["cuda"] = [{"name": torch.cuda.get_device_name(i), "memoryGiB": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)} for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    r["mps"] = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
except Exception as e:
    r["error"] = "%s: %s" % (type(e).__name__, e)
print(json.dumps(r))`;

export const doctorCommand: Command = {
  summary: 'report engines, execution providers, Python/torch and GPUs',
  async run(args) {
    const o = parseOptions(args, { json: { type: 'boolean' }, python: { type: 'string' } }, HELP);
    if (!o) return 0;
    const report = chooseProvider('auto');
    const { python, how, torch } = torchReport(o.values.python);
    const info = {
      machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30) },
      onnx: { onnxruntime: ort.env.versions.common, backends: ort.listSupportedBackends().map((b) => b.name), chosen: report.chosen, skipped: report.skipped },
      torch: { interpreter: python, how, ...torch },
      torchEngineUsable: typeof torch.torch === 'string',
      jpeg: jpegDecoder(),
    };
    if (o.values.json) {
      console.log(JSON.stringify(info, null, 2));
      return 0;
    }
    console.log(`machine: ${info.machine.cpus} x ${info.machine.cpu}, ${info.machine.memoryGiB} GiB`);
    console.log(`ONNX engine: onnxruntime-node ${info.onnx.onnxruntime}, providers ${info.onnx.backends.join(', ')}; auto picks ${report.chosen}`);
    for (const s of report.skipped) console.log(`  ${s.provider}: ${s.reason}`);
    if (info.torchEngineUsable) {
      const gpus = (torch.cuda as { name: string; memoryGiB: number }[]) ?? [];
      console.log(`PyTorch engine: ${python} (${how}; Python ${torch.python}), torch ${torch.torch}; ${gpus.length ? gpus.map((g) => `${g.name} ${g.memoryGiB} GiB`).join(', ') : torch.mps ? 'Apple MPS' : 'no GPU (CPU only)'}`);
    } else {
      console.log(`PyTorch engine: not available: ${String(torch.error ?? `torch not importable with ${python}`)}`);
    }
    console.log(`data loader JPEG decoding: ${info.jpeg.decoder} (${info.jpeg.reason})`);
    return 0;
  },
};

/** The interpreter the rule picks (searching afresh) and what it reports; the error says what was tried. */
function torchReport(option: string | undefined): { python: string; how: string; torch: Record<string, unknown> } {
  try {
    const choice = findPython({ option, refresh: true });
    return { python: choice.python, how: choice.how, torch: probeTorch(choice.python) };
  } catch (e) {
    if (!(e instanceof PythonNotFound)) throw e;
    return { python: pythonCandidates()[0]!, how: 'none found', torch: { error: e.message } };
  }
}

function probeTorch(python: string): Record<string, unknown> {
  const probe = spawnSync(python, ['-c', PROBE], { encoding: 'utf8', timeout: 60_000 });
  if (probe.status !== 0) return { error: (probe.stderr || probe.error?.message || 'failed').trim().split('\n').pop() };
  try {
    return JSON.parse(probe.stdout) as Record<string, unknown>;
  } catch {
    return { error: `unexpected output from ${python}` };
  }
}
