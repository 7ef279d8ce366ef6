/**
 * The operation verbs of reborn-config, by verb group (group/server, slot, migration, proxy,
 * topology, redis-config): run the operation (servers.ts) and print its result (output.ts). Invariant:
 * results on stdout, warnings and progress on stderr; with --detach stdout carries only a
 * task id; a failure throws (runCli turns it into the one `reborn-config: <reason>` line).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { ValidationError } from '@reborn/coordinator';
import { NL, writeNote, writeOut, type CliIo } from './cli-io.js';
import { follow } from './cli-follow.js';
import type { Command } from './command.js';
import type { GlobalOptions } from './options.js';
import { formatGroupSettings, formatGroups, formatMigrations, formatPlan, formatProxies, formatSlotInfo, formatSlotRanges, json } from './output.js';
import { formatSlotList, type Admin } from './servers.js';
import { redisConfigVerb, type RedisConfigCommand } from './cli-redis-config.js';

/** The verbs run here: all but help, dashboard and check (cli.ts runs those). */
export type OperationCommand = Exclude<Command, { verb: 'help' | 'dashboard' | 'check' }>;
type CommandOf<V extends OperationCommand['verb']> = Extract<OperationCommand, { verb: V }>;
type GroupCommand = CommandOf<'group add' | 'group remove' | 'group list' | 'group set' | 'server add' | 'server remove' | 'server promote'>;
type SlotCommand = CommandOf<'slot init' | 'slot set' | 'slot list' | 'slot info' | 'slot migrate' | 'slot rebalance'>;
type MigrationCommand = CommandOf<'migration list' | 'migration pause' | 'migration resume' | 'migration cancel'>;
type ProxyCommand = CommandOf<'proxy list' | 'proxy offline'>;
type TopologyCommand = CommandOf<'topology save' | 'topology restore'>;

export async function execute(admin: Admin, global: GlobalOptions, command: OperationCommand, io: CliIo): Promise<void> {
  const noun = command.verb.split(' ')[0];
  switch (noun) {
    case 'group':
    case 'server':
      return groupVerb(admin, global, command as GroupCommand, io);
    case 'slot':
      return slotVerb(admin, global, command as SlotCommand, io);
    case 'migration':
      return migrationVerb(admin, global, command as MigrationCommand, io);
    case 'proxy':
      return proxyVerb(admin, global, command as ProxyCommand, io);
    case 'topology':
      return topologyVerb(admin, global, command as TopologyCommand, io);
    case 'redis-config':
      return redisConfigVerb(admin, global, command as RedisConfigCommand, io);
  }
}

async function groupVerb(admin: Admin, global: GlobalOptions, command: GroupCommand, io: CliIo): Promise<void> {
  const out = (s: string): void => writeOut(io, s);
  const note = (s: string): void => writeNote(io, s);
  switch (command.verb) {
    case 'group add':
      await admin.addGroup(command.gid);
      return out(`group ${command.gid} added`);
    case 'group remove':
      await admin.removeGroup(command.gid);
      return out(`group ${command.gid} removed`);
    case 'group list': {
      const groups = await admin.listGroups();
      return out(global.json ? json(groups) : formatGroups(groups));
    }
    case 'group set': {
      const { group, warnings } = await admin.setGroupSettings(
        command.gid,
        {
          ...(command.minInSync === undefined ? {} : { minInSync: command.minInSync }),
          ...(command.wantReplicas === undefined ? {} : { wantReplicas: command.wantReplicas }),
        },
        { force: command.force },
      );
      for (const w of warnings) note(`warning: ${w}`);
      return out(global.json ? json(group) : formatGroupSettings(group));
    }
    case 'server add': {
      if ('agent' in command) {
        const r = await admin.addServerViaAgent(command.gid, command.agent, { ...(command.port === undefined ? {} : { port: command.port }), token: command.agentToken });
        return out(
          `server ${r.addr} (app ${r.app} on agent ${command.agent}) added to group ${command.gid} as ${r.role}` +
            (r.role === 'master' ? '' : ' (replication link up, initial sync done)'),
        );
      }
      const { role } = await admin.addServer(command.gid, command.addr);
      return out(
        role === 'master'
          ? `server ${command.addr} added to group ${command.gid} as master`
          : `server ${command.addr} added to group ${command.gid} as replica (replication link up, initial sync done)`,
      );
    }
    case 'server remove': {
      const { role } = await admin.removeServer(command.gid, command.addr);
      return out(`server ${command.addr} (${role}) removed from group ${command.gid}`);
    }
    case 'server promote': {
      const r = await admin.promoteServer(command.gid, command.addr);
      for (const w of r.warnings) note(`warning: ${w}`);
      return out(`server ${command.addr} is now the master of group ${command.gid}; old master ${r.oldMaster} is its replica (caught up at offset ${r.offset})`);
    }
  }
}

async function slotVerb(admin: Admin, global: GlobalOptions, command: SlotCommand, io: CliIo): Promise<void> {
  const out = (s: string): void => writeOut(io, s);
  const note = (s: string): void => writeNote(io, s);
  switch (command.verb) {
    case 'slot init': {
      const plan = await admin.initSlots(command.force);
      return out(`slots assigned: ${plan.map((p) => `${p.first}-${p.last} → group ${p.group}`).join(', ')}`);
    }
    case 'slot set': {
      const { changedOwner } = await admin.setSlots(command.first, command.last, command.gid);
      if (changedOwner > 0) note(`warning: ${changedOwner} slot(s) changed owner without moving their data`);
      return out(`slots ${command.first}-${command.last} online in group ${command.gid} (no data was moved)`);
    }
    case 'slot list': {
      const ranges = await admin.listSlots();
      return out(global.json ? json(ranges) : formatSlotRanges(ranges));
    }
    case 'slot info': {
      const info = await admin.slotInfo(command.id);
      return out(global.json ? json(info) : formatSlotInfo(info));
    }
    case 'slot migrate':
      return slotMigrate(admin, global, command, io);
    case 'slot rebalance': {
      if (!command.confirm) return out(formatPlan(await admin.rebalancePlan(), false));
      const { plan, tasks } = await admin.rebalance();
      io.stdout(formatPlan(plan, true));
      const lines: string[] = [];
      for (const t of tasks) {
        note(`created migration ${t.id}: slots ${formatSlotList(t.slots)} → group ${t.to}`);
        lines.push(await follow(admin, global, t.id, io));
      }
      return lines.length > 0 ? out(lines.join(NL)) : undefined;
    }
  }
}

async function slotMigrate(admin: Admin, global: GlobalOptions, command: CommandOf<'slot migrate'>, io: CliIo): Promise<void> {
  const out = (s: string): void => writeOut(io, s);
  const note = (s: string): void => writeNote(io, s);
  const { first, last, gid } = command;
  const { task, resumed } = await admin.startMigration(first, last, gid, {
    ...(command.throttle === undefined ? {} : { throttle: command.throttle }),
    ...(command.batchSlots === undefined ? {} : { batchSlots: command.batchSlots }),
    ...(command.maxSourceLatencyMs === undefined ? {} : { maxSourceLatencyMs: command.maxSourceLatencyMs }),
  });
  if (task === null) {
    // With --detach stdout carries only a task id (scripts capture it): here there is none.
    const msg = `slots ${first}-${last} are already online in group ${gid}: nothing to move`;
    return command.detach ? note(msg) : out(msg);
  }
  if (command.detach) {
    if (resumed) note(`migration ${task.id} of these slots already exists (${task.state})`);
    return out(task.id);
  }
  note(
    resumed
      ? `resuming migration ${task.id} (${task.state}): slots ${formatSlotList(task.slots)} → group ${task.to}`
      : `created migration ${task.id}: slots ${formatSlotList(task.slots)} from group(s) ${task.from.join(',')} → group ${task.to}`,
  );
  return out(await follow(admin, global, task.id, io));
}

async function migrationVerb(admin: Admin, global: GlobalOptions, command: MigrationCommand, io: CliIo): Promise<void> {
  const out = (s: string): void => writeOut(io, s);
  if (command.verb === 'migration list') {
    const tasks = await admin.listMigrations();
    return out(global.json ? json(tasks) : formatMigrations(tasks));
  }
  const op = command.verb.slice('migration '.length) as 'pause' | 'resume' | 'cancel';
  const before = await admin.getMigration(command.id);
  const after = await admin.changeMigration(command.id, op);
  if (after.state === before.state) return out(`migration ${command.id} is already ${after.state}`);
  out(`migration ${command.id}: ${before.state} → ${after.state}`);
  if (op !== 'pause' && !(await admin.runnerAlive())) {
    writeNote(io, `note: no runner is alive for product ${global.product}; start "reborn-config dashboard" (or re-run the same "slot migrate") to carry this out`);
  }
}

async function proxyVerb(admin: Admin, global: GlobalOptions, command: ProxyCommand, io: CliIo): Promise<void> {
  const out = (s: string): void => writeOut(io, s);
  if (command.verb === 'proxy list') {
    const proxies = await admin.listProxies();
    if (global.json) return out(json(proxies));
    return out(formatProxies(proxies, await admin.stalledBarriers()));
  }
  const { registered } = await admin.proxyOffline(command.id);
  return out(`proxy ${command.id} fenced at every group's servers${registered ? ' and its registration deleted' : ''}`);
}

async function topologyVerb(admin: Admin, global: GlobalOptions, command: TopologyCommand, io: CliIo): Promise<void> {
  const out = (s: string): void => writeOut(io, s);
  if (command.verb === 'topology save') {
    const { saveTopology } = await import('./topology.js');
    const text = JSON.stringify(await saveTopology(admin.store), null, 2) + NL;
    if (command.file === '-') return out(text);
    await writeFile(command.file, text);
    return out(`topology of product ${global.product} saved to ${command.file}`);
  }
  const { restoreTopology } = await import('./topology.js');
  let doc: unknown;
  try {
    doc = JSON.parse(command.file === '-' ? await readStdin() : await readFile(command.file, 'utf8'));
  } catch (err) {
    throw new ValidationError(`cannot read a saved topology from ${command.file}: ${(err as Error).message}`);
  }
  const r = await restoreTopology(admin.store, doc, { force: command.force });
  if (global.json) return out(json(r));
  for (const w of r.warnings) writeNote(io, `warning: ${w}`);
  return out(
    r.unchanged
      ? `product ${r.product} already holds this topology (generation ${r.generation}); nothing written`
      : `product ${r.product} restored: generation ${r.generation}, groups ${r.groupsWritten.join(',') || '-'} written, ${r.slotsWritten} slots written (${r.assignedSlots} served)`,
  );
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
