// Types of bin/electron.mjs for the TypeScript tests.
export declare const REPO: string;
/** The path of Electron's binary, or null when it is not installed; never downloads it. */
export declare function electronBinary(): string | null;
