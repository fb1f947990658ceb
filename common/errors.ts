// Errors the user can act on (a bad option, config field, manifest, checkpoint or dataset file): reported
// with their message, which names the file or field and the problem, and without a stack trace. Anything
// else that escapes is a bug, reported with its stack.

/** The base of every error a user can act on; test with `instanceof UserError`. */
export class UserError extends Error {
  override name = 'UserError';
}
