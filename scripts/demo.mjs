#!/usr/bin/env node
// npm run demo: the relay end to end on loopback, against the built-in Microsoft 365 simulator.
// 1. builds if dist/ is missing or older than src/;  2. starts the simulator (HTTPS token endpoint +
// SMTP submission with STARTTLS and XOAUTH2);  3. starts the real daemon (node dist/cli.js run) as a
// child process trusting the simulator's CA;  4. sends a message the way a scanner does (plain SMTP,
// no AUTH, its own sender address) to an internal and an external recipient: the internal one goes
// through a High Volume Email account, the external one through the mailbox;  5. shows what arrived
// at the simulator;  6. stops everything.
// With --console (npm run demo -- --console): the web console on the http listener as well; the
// relay and the simulator keep running (Ctrl-C stops them), with a delivered, a deferred and a
// failed message to look at.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'dist', 'cli.js');

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

if (!existsSync(cli) || statSync(cli).mtimeMs < newestMtime(join(root, 'src'))) {
  console.log('building (npm run build)...');
  const built = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
  if (built.status !== 0) process.exit(1);
}

const { startSimulator } = await import(join(root, 'dist/simulator/index.js'));
const nodemailer = (await import('nodemailer')).default;

const withConsole = process.argv.slice(2).includes('--console');
const CONSOLE_USER = 'admin';
const CONSOLE_PASSWORD = 'm365-relay-demo';
const work = mkdtempSync(join(tmpdir(), 'm365-relay-demo-'));
const HVE_APP = { clientId: '33333333-4444-5555-6666-777777777777', clientSecret: 'hve-secret' };
const sim = await startSimulator({
  apps: [{ clientId: '11111111-2222-3333-4444-555555555555', clientSecret: 'sim-secret' }, HVE_APP],
  hve: { accounts: [{ address: 'notifications@contoso.com', apps: [HVE_APP.clientId] }], acceptedDomains: ['contoso.com'] },
});
writeFileSync(join(work, 'simulator-ca.pem'), sim.caPem);
const consoleConfig = withConsole
  ? `http:
  host: 127.0.0.1
  port: 0            # any free port on loopback
console:
  users:
    - username: ${CONSOLE_USER}
      passwordHash: "${await (await import(join(root, 'dist/access/passwords.js'))).hashPassword(CONSOLE_PASSWORD)}"
retry:
  schedule: [10m]    # the deferred message waits for you to retry it from the console
`
  : '';
const config = `# written by npm run demo
listen:
  - port: 0            # any free port on loopback
    host: 127.0.0.1
allowNetworks: [127.0.0.1/32]
spool:
  dir: ${join(work, 'spool')}
microsoft365:
  tenantId: ${sim.tenantId}
  clientId: 11111111-2222-3333-4444-555555555555
  clientSecret: \${DEMO_CLIENT_SECRET}
  authorityHost: ${sim.authorityHost}
  smtpHost: ${sim.smtpHost}
  smtpPort: ${sim.smtpPort}
  mailbox: relay@contoso.com
  sendAs: ["@contoso.com"]
accounts:
  hve:                 # High Volume Email: internal recipients only
    transport: hve
    tenantId: ${sim.tenantId}
    clientId: ${HVE_APP.clientId}
    clientSecret: \${DEMO_HVE_SECRET}
    authorityHost: ${sim.authorityHost}
    smtpHost: ${sim.hveHost}     # stands in for smtp.hve.mx.microsoft
    smtpPort: ${sim.hvePort}
    mailbox: notifications@contoso.com
routes:
  - { recipientDomain: [contoso.com], account: hve }
${consoleConfig}`;
writeFileSync(join(work, 'relay.yaml'), config);

console.log(`\n[1] Microsoft 365 simulator: token endpoint ${sim.authorityHost}/${sim.tenantId}, SMTP ${sim.smtpHost}:${sim.smtpPort} (STARTTLS + XOAUTH2), High Volume Email ${sim.hveHost}:${sim.hvePort}`);
const relay = spawn(process.execPath, [cli, 'run', '--config', join(work, 'relay.yaml')], {
  cwd: root,
  env: { ...process.env, NODE_EXTRA_CA_CERTS: join(work, 'simulator-ca.pem'), DEMO_CLIENT_SECRET: 'sim-secret', DEMO_HVE_SECRET: HVE_APP.clientSecret },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const logs = [];
createInterface({ input: relay.stdout }).on('line', (line) => {
  try {
    logs.push(JSON.parse(line));
  } catch {
    /* not JSON */
  }
});

let exitCode = 1;
try {
  const listening = await until('the relay to listen', () => logs.find((l) => l.event === 'listening'), 15_000);
  const port = listening.addresses[0].port;
  console.log(`[2] relay running (pid ${relay.pid}), listening on 127.0.0.1:${port}: contoso.com recipients through HVE (notifications@contoso.com), others through relay@contoso.com`);

  const scanner = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  const message = [
    'From: "Scanner 3rd floor" <scanner@printer.local>',
    'To: alice@contoso.com, partner@fabrikam.example',
    'Subject: Scanned document',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Your scan is attached (well, imagine it is).',
    '',
  ].join('\r\n');
  const info = await scanner.sendMail({ envelope: { from: 'scanner@printer.local', to: ['alice@contoso.com', 'partner@fabrikam.example'] }, raw: message });
  scanner.close();
  console.log(`[3] scanner sent plain SMTP, no AUTH, as scanner@printer.local to alice@contoso.com and partner@fabrikam.example -> relay answered: ${info.response}`);
  const received = await until('the queued line', () => logs.find((l) => l.event === 'received'), 5000);
  for (const part of received.parts ?? []) console.log(`    queued as part ${part.id} for account ${part.account}: ${part.recipients.join(', ')}`);

  const arrived = await sim.waitForMessages(2, 15_000);
  console.log(`[4] arrived at the Microsoft 365 simulator:`);
  for (const m of arrived) {
    const raw = m.raw.toString('utf8');
    const headers = raw.slice(0, raw.search(/\r?\n\r?\n/));
    console.log(`    via             : ${m.via === 'hve' ? 'High Volume Email' : 'SMTP AUTH (mailbox)'}`);
    console.log(`    XOAUTH2 user    : ${m.mailbox} (app ${m.clientId})`);
    console.log(`    envelope        : MAIL FROM:<${m.envelope.from}> RCPT TO:${m.envelope.to.map((t) => `<${t}>`).join(' ')}`);
    console.log(`    upstream id     : ${m.queueId}`);
    console.log('    headers         :');
    for (const line of headers.split(/\r?\n/)) console.log(`      ${line}`);
  }
  const delivered = await until('the delivered log lines', () => (logs.filter((l) => l.event === 'delivered').length >= 2 ? logs.filter((l) => l.event === 'delivered') : null), 5000);
  for (const d of delivered) console.log(`[5] relay log: ${JSON.stringify({ event: d.event, msgId: d.msgId, account: d.account, to: d.to, upstreamReply: d.upstreamReply })}`);
  if (withConsole) await showConsole(port);
  exitCode = 0;
} catch (err) {
  console.error(`demo failed: ${err?.message ?? err}`);
} finally {
  relay.kill('SIGTERM');
  const code = await Promise.race([new Promise((r) => relay.once('exit', r)), new Promise((r) => setTimeout(() => r('timeout'), 15_000))]);
  if (code === 'timeout') relay.kill('SIGKILL');
  else console.log(`[${withConsole ? 7 : 6}] relay stopped on SIGTERM (exit ${code}); simulator closed`);
  await sim.close();
  rmSync(work, { recursive: true, force: true });
}
process.exit(exitCode);

/** --console: a deferred and a failed message beside the delivered one, then the console's address until Ctrl-C. */
async function showConsole(port) {
  const http = await until('the http listener', () => logs.find((l) => l.event === 'http-listening'), 5000);
  sim.faults.rejectRecipients.set('busy@fabrikam.example', '451 4.7.500 Server busy. Please try again later.');
  sim.faults.rejectRecipients.set('nobody@fabrikam.example', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup');
  const device = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  for (const [to, subject] of [['busy@fabrikam.example', 'Toner low on MFP 3rd floor'], ['nobody@fabrikam.example', 'Weekly UPS self-test report']]) {
    const raw = ['From: "UPS basement" <ups@printer.local>', `To: ${to}`, `Subject: ${subject}`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', `${subject}.`, ''].join('\r\n');
    await device.sendMail({ envelope: { from: 'ups@printer.local', to: [to] }, raw });
  }
  device.close();
  await until('the deferral and the failure', () => logs.some((l) => l.event === 'deferred') && logs.some((l) => l.event === 'failed'), 15_000);
  // Exchange is fine again: a retry from the console's queue page now delivers the deferred message.
  sim.faults.rejectRecipients.delete('busy@fabrikam.example');
  console.log(`[6] sent two more: to busy@fabrikam.example (deferred: 451, retry it from the queue page) and to nobody@fabrikam.example (failed: 550)`);
  console.log(`\n    web console: http://127.0.0.1:${http.port}/   user: ${CONSOLE_USER}   password: ${CONSOLE_PASSWORD}`);
  console.log('    (the relay and the simulator keep running; Ctrl-C stops them)\n');
  await new Promise((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
    relay.once('exit', resolve);
  });
}

async function until(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (relay.exitCode !== null) throw new Error(`the relay exited (${relay.exitCode}) while waiting for ${what}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
