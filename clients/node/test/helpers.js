// Test helpers: unique names, condition polling, event waits and a private
// warrend that tests can stop, freeze and restart.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import readline from 'node:readline';

/** A name unique to this run, e.g. node_ab12cd34 (the test stack is shared). */
export function uniq(prefix = 'node') {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

/** Polls `predicate` until it is truthy (returns its value) or the deadline passes. */
export async function waitFor(predicate, { timeoutMs = 10_000, intervalMs = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** The next `event` of `emitter` (whose args pass `filter`), or a timeout error. */
export async function nextEvent(emitter, event, { timeoutMs = 10_000, filter = () => true } = {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`));
    }, timeoutMs);
    function listener(...args) {
      if (!filter(...args)) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args.length <= 1 ? args[0] : args);
    }
    emitter.on(event, listener);
  });
}

/** Records every emission of the named events: log.of('elected') etc. */
export function recordEvents(emitter, names) {
  const log = [];
  for (const name of names) emitter.on(name, (...args) => log.push({ name, args, at: Date.now() }));
  log.of = (name) => log.filter((e) => e.name === name);
  return log;
}

/**
 * A loopback port free right now, below the kernel's ephemeral range
 * (32768 and up), so that no outgoing connection is given it while a test's
 * warrend is down and about to be restarted on it.
 */
export async function freeLoopbackPort() {
  for (let i = 0; i < 100; i++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    const server = net.createServer();
    const free = await new Promise((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (free) {
      await new Promise((resolve) => server.close(resolve));
      return port;
    }
  }
  throw new Error('no free loopback port in 20000-29999');
}

export function requireEnv(...names) {
  const missing = names.filter((n) => !process.env[n]);
  if (missing.length) throw new Error(`missing environment: ${missing.join(', ')} (run through scripts/with-warrend.sh)`);
  return Object.fromEntries(names.map((n) => [n, process.env[n]]));
}

/**
 * A warrend of a test's own, against the test stack. `port` 0 lets the OS
 * pick; restart() serves again on the same port. `root` defaults to a root of
 * its own below WARREN_ROOT.
 */
export class PrivateWarrend {
  constructor({ root, port = 0, flags = [] } = {}) {
    const env = requireEnv('WARREN_WARREND', 'WARREN_TEST_ZK', 'WARREN_TEST_AMQP_URL', 'WARREN_ROOT');
    this.env = env;
    this.root = root ?? `${env.WARREN_ROOT}-${uniq('node')}`;
    this.port = port;
    this.flags = flags;
    this.proc = null;
    this.stderr = '';
  }

  get address() {
    return `127.0.0.1:${this.port}`;
  }

  async start() {
    const args = [
      `--listen=127.0.0.1:${this.port}`, `--zk_connect=${this.env.WARREN_TEST_ZK}`,
      `--amqp_urls=${this.env.WARREN_TEST_AMQP_URL}`, `--root=${this.root}`,
      '--zk_session_timeout=4s', '--shutdown_grace=2s', '--log_level=warn', ...this.flags,
    ];
    const proc = spawn(this.env.WARREN_WARREND, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stderr.on('data', (d) => { this.stderr = (this.stderr + d).slice(-4000); });
    const lines = readline.createInterface({ input: proc.stdout });
    const exited = once(proc, 'exit').then(([code]) => {
      throw new Error(`warrend exited (${code}) during start-up: ${this.stderr}`);
    });
    const serving = new Promise((resolve) => {
      lines.on('line', (line) => {
        const m = /^warrend is serving on (.*):(\d+)$/.exec(line);
        if (m) resolve(Number(m[2]));
      });
    });
    let timer;
    // Longer than warrend's own --backend_wait (30 s), so that a backend it
    // cannot reach shows up as its exit message rather than as our timeout.
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`warrend did not serve within 40s; its stderr: ${this.stderr}`)), 40_000);
    });
    try {
      this.port = await Promise.race([serving, exited, timeout]);
    } catch (err) {
      proc.kill('SIGKILL'); // no orphan left behind a failed start
      this.proc = null;
      throw err;
    } finally {
      clearTimeout(timer);
      exited.catch(() => {});
    }
    return this;
  }

  /** SIGTERM (open streams end with UNAVAILABLE) and wait for the exit. */
  async stop(signal = 'SIGTERM') {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill(signal);
    if (signal === 'SIGKILL') proc.kill('SIGCONT');
    await exited;
    this.proc = null;
  }

  freeze() {
    this.proc.kill('SIGSTOP');
  }

  thaw() {
    this.proc?.kill('SIGCONT');
  }

  async restart() {
    await this.stop();
    return this.start();
  }
}
