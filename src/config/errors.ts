/** One problem in the configuration, addressed by its key path ("microsoft365.tenantId"). */
export interface ConfigProblem {
  path: string;
  message: string;
}

/** The configuration cannot be used. The message lists every problem, one line each. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'ECONFIG';
  readonly problems: ConfigProblem[];

  constructor(source: string, problems: ConfigProblem[]) {
    const lines = problems.map((p) => `  - ${p.path ? `${p.path}: ` : ''}${p.message}`);
    super(`Invalid configuration in ${source}:\n${lines.join('\n')}`);
    this.problems = problems;
  }
}
