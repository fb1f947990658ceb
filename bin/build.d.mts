// Types of bin/build.mjs for the TypeScript tests.
export type BuildMode = 'production' | 'bench' | 'preload';
/** Whether dist/ holds a build of `mode` at least as new as its sources. */
export declare function isBuilt(mode: BuildMode): boolean;
/** Builds `mode` unless dist/ is up to date; returns its output folder. */
export declare function ensureBuilt(mode?: BuildMode): Promise<string>;
