/**
 * A group's durability settings as an operator sets them (`group set`, `PATCH /api/groups/:gid`)
 * and what its in-sync set means for durable writes as reborn-config shows it.
 *
 * minInSync: durable writes are refused while the in-sync set has fewer members.
 * wantReplicas: how many replicas agents with capacity should keep the group at.
 * The in-sync set itself is the HA leader's to write; nothing here changes it.
 *
 * Invariant: pure (no etcd, no redis). applyGroupSettings returns the group with only the two
 * settings changed — servers and inSync exactly as read — or refuses with a message that says
 * what is wrong and how to go ahead; checks and words are shared by the CLI and the API.
 */
import { ConflictError, MAX_GROUP_REPLICAS, ServerRole, ValidationError, inSyncMembers, type GroupInfo } from '@reborn/coordinator';

/** Per setting: a number sets it, null clears it, undefined (absent) leaves it as it is. */
export interface GroupSettingsChange {
  minInSync?: number | null;
  wantReplicas?: number | null;
}

/**
 * What a durable proxy does with a write to the group now:
 * - `ok`: waits for every member of the in-sync set (or for nobody: no replicas);
 * - `degraded`: the set is empty while the group has replicas — the master alone acknowledges;
 * - `refusing`: the set is smaller than minInSync — writes are refused.
 */
export type Durability = 'ok' | 'degraded' | 'refusing';

/** The setting names in the operator's words (the CLI's flags; the API's fields are camelCase). */
const WORDS = { minInSync: 'min-in-sync', wantReplicas: 'want-replicas' } as const;

/** A setting's value: an integer 0..MAX_GROUP_REPLICAS (null, clearing it, passes too). */
export function checkReplicaSetting(name: keyof GroupSettingsChange, v: number | null): number | null {
  if (v !== null && (!Number.isSafeInteger(v) || v < 0 || v > MAX_GROUP_REPLICAS)) {
    throw new ValidationError(`invalid ${WORDS[name]} ${v}: want 0..${MAX_GROUP_REPLICAS}, or none to clear it`);
  }
  return v;
}

export function replicaCount(g: GroupInfo): number {
  return g.servers.filter((s) => s.role === ServerRole.Replica).length;
}

export function durabilityOf(g: GroupInfo): Durability {
  const members = inSyncMembers(g).length;
  if (g.minInSync !== undefined && members < g.minInSync) return 'refusing';
  if (members === 0 && replicaCount(g) > 0) return 'degraded';
  return 'ok';
}

/**
 * `g` with the change applied, and what the operator should know about the result.
 * Refused (ConflictError) unless `force`: a minInSync above the group's replica count, or
 * above its wantReplicas — either way durable writes would be refused until more replicas
 * exist, which is an outage an operator should ask for explicitly.
 */
export function applyGroupSettings(g: GroupInfo, change: GroupSettingsChange, opts: { force?: boolean } = {}): { next: GroupInfo; warnings: string[] } {
  if (change.minInSync === undefined && change.wantReplicas === undefined) {
    throw new ValidationError(`nothing to set for group ${g.id}: give ${WORDS.minInSync} and/or ${WORDS.wantReplicas}`);
  }
  for (const name of ['minInSync', 'wantReplicas'] as const) {
    const v = change[name];
    if (v !== undefined) checkReplicaSetting(name, v);
  }
  // Rebuilt field by field so a cleared setting leaves the record instead of staying as null.
  const { minInSync: oldMin, wantReplicas: oldWant, ...rest } = g;
  const min = change.minInSync === undefined ? oldMin : (change.minInSync ?? undefined);
  const want = change.wantReplicas === undefined ? oldWant : (change.wantReplicas ?? undefined);
  const next: GroupInfo = { ...rest, ...(min === undefined ? {} : { minInSync: min }), ...(want === undefined ? {} : { wantReplicas: want }) };

  // Only what this change sets is checked: a forced setting does not block later, unrelated ones.
  const setsMin = typeof change.minInSync === 'number';
  const setsEither = setsMin || typeof change.wantReplicas === 'number';
  const warnings: string[] = [];
  const replicas = replicaCount(g);
  const members = inSyncMembers(g).length;
  if (setsMin && min !== undefined && min > replicas) {
    const why = `${WORDS.minInSync} ${min} is more than the ${replicas} replica(s) of group ${g.id}: durable writes to it would be refused until it has ${min}`;
    if (!opts.force) throw new ConflictError(`${why}; add replicas first, or use --force`);
    warnings.push(why);
  } else if (min !== undefined && min > members) {
    warnings.push(`group ${g.id} has ${members} of ${replicas} replica(s) in sync: durable writes to it are refused until ${min} are`);
  }
  if (setsEither && min !== undefined && want !== undefined && min > want) {
    const why = `${WORDS.minInSync} ${min} is more than ${WORDS.wantReplicas} ${want} of group ${g.id}: durable writes would be refused once it has the replicas it wants`;
    if (!opts.force) throw new ConflictError(`${why}; lower one of them, or use --force`);
    warnings.push(why);
  }
  return { next, warnings };
}
