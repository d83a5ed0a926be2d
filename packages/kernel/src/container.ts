/**
 * Containers and named lookups. Each run gets its own child container (no global registrations), and
 * implementations that share a token are told apart by their `name`.
 */
import 'reflect-metadata';
import { container as rootContainer, type DependencyContainer, type InjectionToken } from 'tsyringe';
import { TopiaryError } from './errors.js';

/** A fresh container for one run; registrations never leak into another run. */
export function createContainer(): DependencyContainer {
  return rootContainer.createChildContainer();
}

/** Every implementation registered under a token (empty when none). */
export function resolveAllOrNone<T>(container: DependencyContainer, token: InjectionToken<T>): T[] {
  return container.isRegistered(token, true) ? container.resolveAll(token) : [];
}

/**
 * The implementation called `name` under a token; an unknown name lists the known ones.
 * `what` is how to call it in the message (`pruner`, `saliency`), `where` the flag or field at fault.
 */
export function resolveNamed<T extends { name: string }>(
  container: DependencyContainer,
  token: InjectionToken<T>,
  name: string,
  what: string,
  where?: string,
): T {
  const all = resolveAllOrNone(container, token);
  const found = all.find((item) => item.name === name);
  if (!found) {
    const known = all.map((item) => item.name).sort();
    throw new TopiaryError('E_PLUGIN_UNKNOWN', `unknown ${what} "${name}"`, {
      where,
      hint: known.length ? `known ${what} names: ${known.join(', ')}` : `no ${what} plugin is installed`,
    });
  }
  return found;
}

/** Bind a value under a token (plugins call this from `register`). */
export function provide<T>(container: DependencyContainer, token: InjectionToken<T>, value: T): void {
  container.register(token, { useValue: value });
}
