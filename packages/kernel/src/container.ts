/**
 * Containers and named lookups — what the DI container (tsyringe) is here for:
 * - one child container per run: a run's plugins, event bus and stages live in it, so two runs in one process
 *   never see each other's registrations (nothing is registered in the root container);
 * - named registrations: every implementation bound under a kind token (`Tokens.Pruner`) is also bound under its
 *   own named token (`topiary:Pruner:wanda`), so a recipe's name resolves directly, and the kind token lists all.
 * Values are registered, never classes: plugins build their objects themselves (no decorator metadata needed).
 */
import 'reflect-metadata';
import { container as rootContainer, type DependencyContainer, type InjectionToken } from 'tsyringe';
import { TopiaryError } from './errors.js';

/** A fresh container for one run; registrations never leak into another run. */
export function createContainer(): DependencyContainer {
  return rootContainer.createChildContainer();
}

/** The token an implementation called `name` is bound under, beside its kind token. */
export function namedToken<T>(token: InjectionToken<T>, name: string): InjectionToken<T> {
  const kind = typeof token === 'symbol' ? (token.description ?? 'token') : String(token);
  return Symbol.for(`${kind}:${name}`) as InjectionToken<T>;
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
  const named = namedToken(token, name);
  if (container.isRegistered(named, true)) return container.resolve(named);
  const all = resolveAllOrNone(container, token);
  const found = all.find((item) => item.name === name);
  if (found) return found;
  const known = [...new Set(all.map((item) => item.name))].sort();
  throw new TopiaryError('E_PLUGIN_UNKNOWN', `unknown ${what} "${name}"`, {
    where,
    hint: known.length ? `known ${what} names: ${known.join(', ')}` : `no ${what} plugin is installed`,
  });
}

/**
 * Bind a value under its kind token (plugins call this from `register`). The host (`PluginHost`) binds it under its
 * own name too, however the plugin registered it — one place for that.
 */
export function provide<T>(container: DependencyContainer, token: InjectionToken<T>, value: T): void {
  container.register(token, { useValue: value });
}
