/**
 * The tunnelwarden command line. Exit codes: 0 done (or valid), 1 invalid input (nothing on
 * the host changed), 2 usage error, 3 applied but the host does not match yet, 4 a command or
 * the host failed.
 */
import { Command, CommanderError, Option } from 'commander';
import { TunnelwardenError, asTunnelwardenError } from '../errors.js';
import { formatFinding } from '../model/load.js';
import { DEFAULT_PATHS } from '../model/paths.js';
import { desiredStateJsonSchema, type DesiredState } from '../model/schema.js';
import { createCommandRunner } from '../host/exec.js';
import { hostFiles } from '../host/files.js';
import { readDesiredFile } from '../host/desired-file.js';
import { createLogger, type LogLevel } from '../log.js';
import { describeAction, formatAction } from '../plan/actions.js';
import { runPass, type PassResult } from '../apply/pass.js';
import { packageVersion } from './version.js';
import { OBSERVE_SOURCES, observeForReport, type ObserveFiles } from './observe-command.js';
import { isJsonSchemaDocument, validateSecretFiles } from './validate-extras.js';
import { RUN_DEFAULTS, runCommand } from '../daemon/run-command.js';
import { buildStatusReport, formatStatusReport } from '../daemon/status-report.js';
import { CLIENT_PROFILE_FORMATS, type ClientProfileFormat } from '../plan/client-profile.js';
import { buildClientProfile, validateHostFiles } from './roadwarrior.js';

export const EXIT = { ok: 0, invalid: 1, usage: 2, notConverged: 3, failed: 4 } as const;

class ExitRequest extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

const out = (line: string) => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`${line}\n`);

/**
 * Loads a desired-state file or prints why not and exits 1. Commands that would change the
 * host pass a note saying that nothing was.
 */
async function loadOrExit(path: string, changesNothingNote = ''): Promise<DesiredState> {
  const result = await readDesiredFile(path);
  if ('unreadable' in result) {
    err(result.unreadable);
    throw new ExitRequest(EXIT.invalid);
  }
  for (const warning of result.warnings) err(`${path}: ${formatFinding(warning)}`);
  if (!result.ok) {
    for (const finding of result.errors) err(`${path}: ${formatFinding(finding)}`);
    err(`${path}: invalid (${result.errors.length} error${result.errors.length === 1 ? '' : 's'})${changesNothingNote}`);
    throw new ExitRequest(EXIT.invalid);
  }
  return result.state;
}

function reportFailures(failures: PassResult['failures']): void {
  for (const { resource, error } of failures) err(`${resource}: ${error.message} [${error.code}]`);
}

function passDependencies(logLevel: LogLevel) {
  const logger = createLogger({ level: logLevel });
  return { logger, run: createCommandRunner(logger), files: hostFiles, paths: DEFAULT_PATHS };
}

const logLevelOption = () =>
  new Option('--log-level <level>', 'log level of the JSON log on stderr')
    .choices(['error', 'warn', 'info', 'debug', 'silent'])
    .default('warn');

function buildProgram(): Command {
  const program = new Command('tunnelwarden')
    .description('Keeps a host\'s strongSwan IPsec VPN, transit link, masquerade and LXD NAT as declared.')
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .configureOutput({ writeOut: (text) => process.stdout.write(text), writeErr: (text) => process.stderr.write(text) });

  program
    .command('validate')
    .description('check desired-state files; exit 0 when all are valid (warnings are printed)')
    .argument('<file...>', 'desired-state JSON files')
    .option(
      '--host-checks',
      'require the secret and road-warrior certificate files here (default: check them when present)',
    )
    .action(async (files: string[], options: { hostChecks?: boolean }) => {
      let invalid = 0;
      for (const file of files) {
        try {
          if (await isJsonSchemaDocument(file)) {
            out(`${file}: a JSON Schema, not a desired state: skipped`);
            continue;
          }
          const state = await loadOrExit(file);
          const required = options.hostChecks === true;
          const secretsUsable = await validateSecretFiles(file, state, required, err);
          const credentialsUsable = await validateHostFiles(file, state, required, err);
          if (!secretsUsable || !credentialsUsable) throw new ExitRequest(EXIT.invalid);
          out(`${file}: valid`);
        } catch (thrown) {
          if (!(thrown instanceof ExitRequest)) throw thrown;
          invalid += 1;
        }
      }
      if (invalid > 0) throw new ExitRequest(EXIT.invalid);
    });

  program
    .command('plan')
    .description('show the actions a pass would take on this host, changing nothing')
    .argument('<file>', 'desired-state JSON file')
    .option('--json', 'print the plan as JSON')
    .addOption(logLevelOption())
    .action(async (file: string, options: { json?: boolean; logLevel: LogLevel }) => {
      const desired = await loadOrExit(file);
      const result = await runPass(desired, passDependencies(options.logLevel), { dryRun: true });
      reportFailures(result.failures);
      if (options.json) {
        const failures = result.failures.map(({ resource, error }) => ({ resource, code: error.code, message: error.message }));
        out(JSON.stringify({ actions: result.actions.map(describeAction), failures }, null, 2));
      } else if (result.actions.length === 0 && result.failures.length === 0) {
        out('No changes: the host matches the desired state.');
      } else {
        result.actions.forEach((action, index) => out(`${index + 1}. ${formatAction(action)}`));
      }
      if (result.failures.length > 0) throw new ExitRequest(EXIT.failed);
    });

  program
    .command('apply')
    .description('run one reconcile pass; exit 0 only when the host then matches the desired state')
    .argument('<file>', 'desired-state JSON file')
    .option('--json', 'print the result as JSON')
    .addOption(logLevelOption())
    .action(async (file: string, options: { json?: boolean; logLevel: LogLevel }) => {
      const desired = await loadOrExit(file, '; nothing was changed');
      const result = await runPass(desired, passDependencies(options.logLevel));
      if (options.json) {
        out(
          JSON.stringify(
            {
              applied: result.actions.map(describeAction),
              remaining: result.remaining.map(describeAction),
              failures: result.failures.map(({ resource, error }) => ({ resource, code: error.code, message: error.message })),
              converged: result.remaining.length === 0 && result.failures.length === 0,
            },
            null,
            2,
          ),
        );
      } else {
        if (result.actions.length === 0 && result.failures.length === 0) {
          out('No action: the host already matches the desired state.');
        }
        result.actions.forEach((action, index) => out(`applied ${index + 1}. ${formatAction(action)}`));
        result.remaining.forEach((action) => out(`still needed: ${formatAction(action)}`));
      }
      reportFailures(result.failures);
      if (result.failures.length > 0) throw new ExitRequest(EXIT.failed);
      if (result.remaining.length > 0) {
        err('the host does not match the desired state yet');
        throw new ExitRequest(EXIT.notConverged);
      }
    });

  program
    .command('run')
    .description('run the daemon: a pass at start, then on file change, on schedule and on SIGHUP')
    .option('--config <file>', 'desired-state JSON file', RUN_DEFAULTS.config)
    .option('--interval-seconds <n>', 'full pass every N seconds', String(RUN_DEFAULTS.intervalSeconds))
    .option('--status-file <file>', 'where the status of the last pass is written', RUN_DEFAULTS.statusFile)
    .addOption(
      new Option('--log-level <level>', 'level of the JSON log on stdout (journald-prefixed)')
        .choices(['error', 'warn', 'info', 'debug'])
        .default(RUN_DEFAULTS.logLevel),
    )
    .action(async (options: { config: string; intervalSeconds: string; statusFile: string; logLevel: LogLevel }) => {
      if (!/^\d+$/.test(options.intervalSeconds)) {
        err(`tunnelwarden run: --interval-seconds: "${options.intervalSeconds}" is not a whole number of seconds`);
        throw new ExitRequest(EXIT.usage);
      }
      throw new ExitRequest(await runCommand({ ...options, intervalSeconds: Number(options.intervalSeconds) }));
    });

  program
    .command('status')
    .description('show desired vs observed per resource and connection, and the daemon\'s last pass')
    .option('--config <file>', 'desired-state JSON file', RUN_DEFAULTS.config)
    .option('--status-file <file>', 'status file of the running daemon', RUN_DEFAULTS.statusFile)
    .option('--json', 'print the report as JSON')
    .addOption(logLevelOption())
    .action(async (options: { config: string; statusFile: string; json?: boolean; logLevel: LogLevel }) => {
      const loaded = await readDesiredFile(options.config);
      const problem = 'unreadable' in loaded ? loaded.unreadable : loaded.ok ? undefined : `${loaded.errors.length} error(s); run validate`;
      const report = await buildStatusReport({
        configPath: options.config,
        desired: loaded.ok ? loaded.state : undefined,
        ...(problem ? { desiredProblem: problem } : {}),
        statusFile: options.statusFile,
        ports: passDependencies(options.logLevel),
      });
      out(options.json ? JSON.stringify(report, null, 2) : formatStatusReport(report).trimEnd());
    });

  program
    .command('client-profile')
    .description('print what a road-warrior client needs to connect; the password only with --include-password')
    .argument('<name>', "the client's EAP identity")
    .requiredOption('--config <file>', 'desired-state JSON file')
    .addOption(new Option('--format <format>', 'profile format').choices(CLIENT_PROFILE_FORMATS).default('mobileconfig'))
    .option('--include-password', "put the client's password into the profile")
    .option('--remote-address <address>', 'address or DNS name clients dial (default: the server id)')
    .action(async (name: string, options: { config: string; format: ClientProfileFormat; includePassword?: boolean; remoteAddress?: string }) => {
      process.stdout.write(await buildClientProfile(await loadOrExit(options.config), name, options, err));
    });

  const observe = program
    .command('observe')
    .description(
      'print the observed strongSwan and xfrm state as JSON; with file flags, parse captured outputs instead',
    )
    .addOption(logLevelOption());
  for (const source of OBSERVE_SOURCES) {
    observe.option(`${source.flag} <file>`, `parse this captured \`${source.argv.join(' ')}\` output`);
  }
  observe.action(async (options: ObserveFiles & { logLevel: LogLevel }) => {
    const logger = createLogger({ level: options.logLevel });
    out(JSON.stringify(await observeForReport(options, createCommandRunner(logger)), null, 2));
  });

  program
    .command('schema')
    .description('print the JSON Schema of the desired-state file')
    .action(() => {
      out(JSON.stringify(desiredStateJsonSchema(), null, 2));
    });

  return program;
}

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (thrown) {
    if (thrown instanceof ExitRequest) return thrown.exitCode;
    if (thrown instanceof CommanderError) {
      return thrown.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const error = asTunnelwardenError(thrown);
    err(`tunnelwarden: ${error.message} [${error.code}]`);
    if (error instanceof TunnelwardenError && error.kind === 'invalid-config') return EXIT.invalid;
    return EXIT.failed;
  }
}

