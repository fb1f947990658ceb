// `cnx launch --slurm | --torchrun-multinode`: a launch folder for a cluster, to copy onto (or write into) a
// shared filesystem: the frozen job config and dataset manifest, the PyTorch engine's package, a run folder the
// workbench can attach to, and the script that starts the run on every node (see docs/scale-out.md).
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type JobConfig, parseJobConfig } from '../../common/job.ts';
import { sha256Hex } from '../../common/sha256.ts';
import { type Command, CliError, parseOptions } from './command.ts';

const HELP = `usage: cnx launch (--slurm | --torchrun-multinode) --config JOB.json --out DIR [options]

Writes a launch folder for a cluster (DIR on a filesystem every node sees):
  job.json        the job config, frozen (runDir, manifest and init weights point into DIR)
  manifest.json   the dataset manifest (its root must be readable on the nodes: --data-root)
  engine/         the PyTorch engine (run_job.py + cnx_torch + common/variants.json), run with the cluster's Python
  run/            the run folder: checkpoints and events.jsonl, followed with \`cnx attach DIR/run\`
  submit.sbatch   (--slurm) sbatch it; requeued at the time limit, resumes from the last checkpoint
  launch-node.sh  (--torchrun-multinode) run it on every node with NODE_RANK and MASTER_ADDR set

options:
  --config FILE         a job config (e.g. a run's config.json or job.json)
  --out DIR             the launch folder to write (must not exist or be empty)
  --nodes N             nodes (default 1)
  --gpus-per-node G     GPUs per node, one process each (default: the config's devices, else 1);
                        0 runs --nproc CPU processes per node with gloo
  --nproc N             processes per node when --gpus-per-node is 0 (default: the config's nproc, else 1)
  --time T              SLURM time limit, e.g. 24:00:00 (default 24:00:00)
  --partition P, --account A   SLURM partition and account
  --data-root DIR       where the dataset's images are on the cluster (replaces the manifest's root)
  --python PATH         the cluster's Python with torch (default python3)`;

const OPTIONS = {
  slurm: { type: 'boolean' }, 'torchrun-multinode': { type: 'boolean' }, config: { type: 'string' }, out: { type: 'string' },
  nodes: { type: 'string', default: '1' }, 'gpus-per-node': { type: 'string' }, nproc: { type: 'string' },
  time: { type: 'string', default: '24:00:00' }, partition: { type: 'string' }, account: { type: 'string' },
  'data-root': { type: 'string' }, python: { type: 'string', default: 'python3' },
} as const;

const TORCH_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'torch');
const VARIANTS_JSON = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'common', 'variants.json');

export interface LaunchPlan {
  dir: string;
  nodes: number;
  gpusPerNode: number;
  procsPerNode: number;
  time: string;
  partition: string | undefined;
  account: string | undefined;
  python: string;
}

export const launchCommand: Command = {
  summary: 'write a launch folder for a cluster (SLURM sbatch script or multi-node torchrun)',
  async run(args) {
    const o = parseOptions(args, OPTIONS, HELP);
    if (!o) return 0;
    const v = o.values;
    if (!!v.slurm === !!v['torchrun-multinode']) throw new CliError(`give one of --slurm or --torchrun-multinode\n\n${HELP}`);
    if (!v.config || !v.out) throw new CliError(`--config and --out are required\n\n${HELP}`);
    const config = readConfig(v.config);
    const count = (name: string, s: string | undefined, fallback: number, lo: number) => {
      const n = s === undefined ? fallback : Number(s);
      if (!Number.isInteger(n) || n < lo) throw new CliError(`--${name} must be a whole number >= ${lo}, got '${s}'`);
      return n;
    };
    const configGpus = config.devices === null ? (config.device === 'cpu' ? 0 : 1) : typeof config.devices === 'number' ? config.devices : config.devices.length;
    const gpusPerNode = count('gpus-per-node', v['gpus-per-node'], configGpus, 0);
    const plan: LaunchPlan = {
      dir: resolve(v.out), nodes: count('nodes', v.nodes, 1, 1), gpusPerNode,
      procsPerNode: gpusPerNode || count('nproc', v.nproc, config.nproc ?? 1, 1),
      time: v.time!, partition: v.partition, account: v.account, python: v.python!,
    };
    if (config.data.batchSize % (plan.nodes * plan.procsPerNode)) throw new CliError(`data.batchSize ${config.data.batchSize} (the global batch) does not split evenly over ${plan.nodes} x ${plan.procsPerNode} processes`);
    if (existsSync(plan.dir) && readdirSync(plan.dir).length) throw new CliError(`${plan.dir}: the launch folder exists and is not empty`);
    writeLaunchFolder(plan, config, v['data-root'], v.slurm ? 'slurm' : 'torchrun');
    const script = v.slurm ? join(plan.dir, 'submit.sbatch') : join(plan.dir, 'launch-node.sh');
    console.log(`launch folder ${plan.dir}: ${plan.nodes} node(s) x ${plan.procsPerNode} process(es)${plan.gpusPerNode ? ' (one per GPU)' : ' on CPUs'}`);
    console.log(v.slurm ? `submit: sbatch ${script}` : `on every node: NODE_RANK=<0..${plan.nodes - 1}> MASTER_ADDR=<node 0's host> ${script}`);
    console.log(`follow: cnx attach ${join(plan.dir, 'run')}`);
    return 0;
  },
};

function readConfig(file: string): JobConfig {
  try {
    return parseJobConfig(JSON.parse(readFileSync(file, 'utf8')));
  } catch (e) {
    throw new CliError(`${file}: ${(e as Error).message}`);
  }
}

function writeLaunchFolder(plan: LaunchPlan, config: JobConfig, dataRoot: string | undefined, mode: 'slurm' | 'torchrun'): void {
  const dir = plan.dir;
  const run = join(dir, 'run');
  mkdirSync(join(run, 'checkpoints'), { recursive: true });
  copyEngine(join(dir, 'engine'));
  const manifest = JSON.parse(readFileSync(config.data.manifest, 'utf8')) as Record<string, unknown>;
  if (dataRoot) manifest.root = resolve(dataRoot);
  writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  let init = config.init.weights;
  if (init) {
    const copy = join(dir, `init-${basename(init)}`);
    copyFileSync(init, copy);
    init = copy;
  }
  const frozen: JobConfig = {
    ...config, runDir: run, resume: null, init: { weights: init },
    data: { ...config.data, manifest: join(dir, 'manifest.json') },
    // The script's launcher places the node's processes; the GPUs are the ones SLURM gives the job.
    devices: plan.gpusPerNode ? plan.gpusPerNode : null, nproc: plan.procsPerNode,
    device: plan.gpusPerNode ? 'cuda' : 'cpu',
  };
  const job = `${JSON.stringify(frozen, null, 2)}\n`;
  writeFileSync(join(dir, 'job.json'), job);
  // A run folder as the workbench writes it, so `cnx attach` and the app read it like any other.
  const id = basename(dir);
  writeFileSync(join(run, 'config.json'), job);
  writeFileSync(join(run, 'run.json'), `${JSON.stringify({ id, name: `${config.kind} ${config.model.arch} (cluster)`, createdAt: new Date().toISOString(), engineChoice: 'torch', priority: 0, dataset: null }, null, 2)}\n`);
  const launch = { version: 1, mode, createdAt: new Date().toISOString(), nodes: plan.nodes, gpusPerNode: plan.gpusPerNode, procsPerNode: plan.procsPerNode, time: plan.time, partition: plan.partition ?? null, account: plan.account ?? null, jobSha256: sha256Hex(job) };
  writeFileSync(join(dir, 'launch.json'), `${JSON.stringify(launch, null, 2)}\n`);
  const script = mode === 'slurm' ? ['submit.sbatch', sbatchScript(plan)] : ['launch-node.sh', torchrunNodeScript(plan)];
  writeFileSync(join(dir, script[0]!), script[1]!, { mode: 0o755 });
}

function copyEngine(to: string): void {
  mkdirSync(join(to, 'cnx_torch'), { recursive: true });
  copyFileSync(join(TORCH_DIR, 'run_job.py'), join(to, 'run_job.py'));
  for (const f of readdirSync(join(TORCH_DIR, 'cnx_torch'))) if (f.endsWith('.py')) copyFileSync(join(TORCH_DIR, 'cnx_torch', f), join(to, 'cnx_torch', f));
  // The variant table both engines read (cnx_torch/models.py finds it in the nearest ancestor's common/).
  mkdirSync(join(to, 'common'), { recursive: true });
  copyFileSync(VARIANTS_JSON, join(to, 'common', 'variants.json'));
}

const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;

/** What every node runs: the engine's node launcher (torchrun with c10d where it works, else its own ranks). */
function nodeCommand(plan: LaunchPlan): string[] {
  return [
    `LAUNCH=${quote(plan.dir)}`,
    `PYTHON=\${CNX_PYTHON:-${quote(plan.python)}}`,
    `export CNX_NPROC_PER_NODE=${plan.procsPerNode}`,
    '# Resume from the last checkpoint of an earlier attempt (a requeue after the time limit, a failure).',
    'CONFIG="$LAUNCH/job.json"',
    'if [ -f "$LAUNCH/run/checkpoints/last.json" ]; then',
    '  CONFIG="$LAUNCH/attempt-$ATTEMPT.json"',
    `  "$PYTHON" -c 'import json, sys; c = json.load(open(sys.argv[1])); c["resume"] = sys.argv[2]; json.dump(c, open(sys.argv[3], "w"), indent=2)' "$LAUNCH/job.json" "$LAUNCH/run/checkpoints/last.json" "$CONFIG"`,
    'fi',
  ];
}

export function sbatchScript(plan: LaunchPlan): string {
  const directives = [
    `--job-name=cnx-${basename(plan.dir)}`, `--nodes=${plan.nodes}`, '--ntasks-per-node=1',
    ...(plan.gpusPerNode ? [`--gpus-per-node=${plan.gpusPerNode}`] : []),
    `--time=${plan.time}`, ...(plan.partition ? [`--partition=${plan.partition}`] : []), ...(plan.account ? [`--account=${plan.account}`] : []),
    '--requeue', '--signal=B:USR1@180', '--open-mode=append', `--output=${join(plan.dir, 'slurm-%j.out')}`,
  ];
  return [
    '#!/bin/bash',
    ...directives.map((d) => `#SBATCH ${d}`),
    '# Written by `cnx launch --slurm`. One task per node: the engine\'s node launcher starts that node\'s',
    '# processes with torchrun (--rdzv-backend c10d at node 0) or, where torchrun fails, itself with the same',
    '# variables (RANK = SLURM_NODEID x processes per node + local rank, WORLD_SIZE, MASTER_ADDR/PORT).',
    'set -euo pipefail',
    'ATTEMPT=$(( ${SLURM_RESTART_COUNT:-0} + 1 ))',
    ...nodeCommand(plan),
    'export MASTER_ADDR=${MASTER_ADDR:-$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)}',
    'export MASTER_PORT=${MASTER_PORT:-$(( 20000 + SLURM_JOB_ID % 20000 ))}',
    '# Near the time limit SLURM sends USR1: requeue this job, then stop the run (it checkpoints on SIGTERM).',
    'requeue() { echo "cnx: time limit near, requeueing job $SLURM_JOB_ID"; scontrol requeue "$SLURM_JOB_ID"; kill -TERM "$SRUN_PID"; }',
    'trap requeue USR1',
    'srun --ntasks-per-node=1 --kill-on-bad-exit=1 "$PYTHON" "$LAUNCH/engine/run_job.py" "$CONFIG" --events-log "$LAUNCH/run/events.jsonl" --attempt "$ATTEMPT" &',
    'SRUN_PID=$!',
    '# A trapped signal interrupts the first wait; the second waits for the checkpoint to be written.',
    'wait "$SRUN_PID" || wait "$SRUN_PID"',
    '',
  ].join('\n');
}

export function torchrunNodeScript(plan: LaunchPlan): string {
  return [
    '#!/bin/bash',
    '# Written by `cnx launch --torchrun-multinode`: run on every node with NODE_RANK (0..nodes-1) and',
    '# MASTER_ADDR (node 0\'s host) set; torchrun --rdzv-backend c10d where it works, else the engine\'s own ranks.',
    'set -euo pipefail',
    ': "${NODE_RANK:?set NODE_RANK}" "${MASTER_ADDR:?set MASTER_ADDR}"',
    'ATTEMPT=${ATTEMPT:-1}',
    ...nodeCommand(plan),
    `export CNX_NNODES=${plan.nodes} CNX_NODE_RANK=$NODE_RANK MASTER_PORT=\${MASTER_PORT:-29500}`,
    'exec "$PYTHON" "$LAUNCH/engine/run_job.py" "$CONFIG" --events-log "$LAUNCH/run/events.jsonl" --attempt "$ATTEMPT"',
    '',
  ].join('\n');
}
