/**
 * @reborn/config — reborn-config as a library: the operations shared by the CLI and the REST
 * API, the API itself, the CLI runner, and the migration machinery (runner-api.ts).
 */
export * from './errors.js';
export { Admin, compactSlots, evenRanges, migrationTransition, mergeProxies, type AdminOptions } from './servers.js';
export type { GroupView, SlotRange, SlotView, ProxyView, BarrierView, Overview, RebalancePlanView, MigrationOp } from './servers.js';
export { createApi, validateBody, isLoopbackHost, type Api, type ApiOptions, type ApiServer } from './api.js';
export { runCli, type CliIo } from './cli.js';
export { parseCommandLine, usage, VERBS, type Command, type GlobalOptions } from './options.js';
export * from './runner-api.js';
export { Stats, type StatsOptions, type ClusterStats, type ProxyStats, type ServersStats, type ServerStats } from './stats.js';
export { checkProduct, type CheckProgress, type CheckRunOptions } from './check.js';
export * from './check-model.js';
export { describeProblem, formatCheckReport } from './check-report.js';
export { saveTopology, restoreTopology, parseSavedTopology, TOPOLOGY_FORMAT, type SavedTopology, type RestoreOptions, type RestoreReport } from './topology.js';
