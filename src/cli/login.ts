// `m365-relay login --config FILE --account NAME`: signs a device-code account's mailbox in and
// writes its token cache. The caller (cli.ts) resolves the account from the configuration.
import { LoginError, runDeviceCodeLogin } from '../oauth/login.js';
import { loginCommandLine, type DelegatedAccountSettings } from '../oauth/publicClient.js';

export interface DelegatedLoginTarget extends DelegatedAccountSettings {
  /** The account's name in the configuration. */
  name: string;
  /** The configuration file as given to --config (named in the messages). */
  configFile: string;
  /** How long to wait for the sign-in, ms (default 15 min). */
  timeout?: number;
  /** Bound on each request to Entra ID, ms (default 30 s). */
  requestTimeout?: number;
}

/** Exit status: 0 signed in and cache written; 1 the sign-in failed (the reason and advice printed). */
export async function loginCommand(args: { account: DelegatedLoginTarget; out: NodeJS.WritableStream; afterLogin?: () => Promise<string> }): Promise<number> {
  const { account, out } = args;
  const say = (line: string): void => {
    out.write(`${line}\n`);
  };
  say(`Signing in mailbox ${account.mailbox} (account ${account.name}) with the device-code flow.`);
  try {
    const result = await runDeviceCodeLogin(account, {
      onPrompt(message) {
        say('');
        say(message);
        say('');
        say(`Sign in as ${account.mailbox}. Waiting for the sign-in...`);
      },
    });
    say(`Signed in as ${result.username}.`);
    say(`Token cache written to ${result.cacheFile} (mode 0600, ${result.encrypted ? 'encrypted' : 'not encrypted'}).`);
    // The mail that waited for the sign-in goes out now, not at its next scheduled attempt.
    say(args.afterLogin ? await args.afterLogin() : 'A running relay picks the new sign-in up by itself; no restart is needed.');
    return 0;
  } catch (err) {
    if (err instanceof LoginError) {
      say(`Sign-in failed: ${err.message}`);
      say(`What to do: ${err.advice}`);
    } else {
      say(`Sign-in failed: ${(err as Error).message}`);
    }
    say(`To try again: ${loginCommandLine({ configFile: account.configFile, accountName: account.name })}`);
    return 1;
  }
}
