/** Thrown when plugins depend on each other in a circle; `cycle` starts and ends with the same name. */
export class DependencyCycleError extends Error {
  constructor(readonly cycle: readonly string[]) {
    super(`plugin dependency cycle: ${cycle.join(' → ')}`);
    this.name = 'DependencyCycleError';
  }
}

/**
 * Orders `names` so that each comes after everything it depends on; otherwise the given
 * order is kept (a depth-first walk in that order). Every dependency must be in `names`.
 */
export function initOrder(names: readonly string[], dependsOn: (name: string) => readonly string[]): string[] {
  const done = new Set<string>();
  const path: string[] = [];
  const order: string[] = [];
  const visit = (name: string): void => {
    if (done.has(name)) return;
    const seen = path.indexOf(name);
    if (seen >= 0) throw new DependencyCycleError([...path.slice(seen), name]);
    path.push(name);
    for (const dep of dependsOn(name)) visit(dep);
    path.pop();
    done.add(name);
    order.push(name);
  };
  for (const name of names) visit(name);
  return order;
}
