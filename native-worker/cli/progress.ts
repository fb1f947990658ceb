// Progress lines on stderr: redrawn in place on a terminal, an occasional plain line when piped to a log,
// so stdout stays clean for results (and --json). With CNX_PROGRESS=json (set by the workbench when it runs
// a command as a task) each update is one JSON line (common/protocol.ts ProgressLine), at most four a second.

import { PROGRESS_ENV, type ProgressLine } from '../../common/protocol.ts';

export interface Progress {
  /** `fraction` (0..1) is how much of the whole command is done, when it is known. */
  update(line: string, fraction?: number): void;
  /** Prints the final line (if any) and leaves the cursor on a fresh line. */
  done(line?: string): void;
}


export function createProgress(stream: NodeJS.WriteStream = process.stderr, pipedEveryMs = 5000): Progress {
  const json = process.env[PROGRESS_ENV] === 'json';
  const tty = !json && !!stream.isTTY;
  const interval = json ? 250 : tty ? 100 : pipedEveryMs;
  // Quiet at first: a command that finishes within the interval prints no progress at all.
  let last = json ? 0 : Date.now();
  let drawn = false;
  return {
    update(line, fraction) {
      const now = Date.now();
      if (now - last < interval) return;
      last = now;
      if (json) stream.write(`${JSON.stringify({ progress: line, fraction: fraction ?? null } satisfies ProgressLine)}\n`);
      else if (tty) {
        const width = (stream.columns || 80) - 1;
        stream.write(`\r\x1b[K${line.length > width ? `${line.slice(0, width - 1)}…` : line}`);
        drawn = true;
      } else stream.write(`${line}\n`);
    },
    done(line) {
      if (tty && drawn) stream.write('\r\x1b[K');
      if (line) stream.write(json ? `${JSON.stringify({ progress: line, fraction: 1 } satisfies ProgressLine)}\n` : `${line}\n`);
      drawn = false;
    },
  };
}
