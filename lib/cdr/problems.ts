// Bad-input reports: where (file and line, or file and byte offset) and what.

export interface Problem {
  file: string;
  line?: number;
  offset?: number;
  message: string;
}

export type ProblemSink = (p: Problem) => void;

/** `file:line: what`, `file@offset: what` or `file: what`. */
export function formatProblem(p: Problem): string {
  if (p.line !== undefined) return `${p.file}:${p.line}: ${p.message}`;
  if (p.offset !== undefined) return `${p.file}@${p.offset}: ${p.message}`;
  return `${p.file}: ${p.message}`;
}
