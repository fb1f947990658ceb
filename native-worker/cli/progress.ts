// Progress lines on stderr: redrawn in place on a terminal, an occasional plain line when piped to a log,
// so stdout stays clean for results (and --json).

export interface Progress {
  update(line: string): void;
  /** Prints the final line (if any) and leaves the cursor on a fresh line. */
  done(line?: string): void;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr, pipedEveryMs = 5000): Progress {
  const tty = !!stream.isTTY;
  // Quiet at first: a command that finishes within the interval prints no progress at all.
  let last = Date.now();
  let drawn = false;
  return {
    update(line) {
      const now = Date.now();
      if (now - last < (tty ? 100 : pipedEveryMs)) return;
      last = now;
      if (tty) {
        const width = (stream.columns || 80) - 1;
        stream.write(`\r\x1b[K${line.length > width ? `${line.slice(0, width - 1)}…` : line}`);
        drawn = true;
      } else stream.write(`${line}\n`);
    },
    done(line) {
      if (tty && drawn) stream.write('\r\x1b[K');
      if (line) stream.write(`${line}\n`);
      drawn = false;
    },
  };
}
