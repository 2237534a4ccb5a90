// `m365-relay setup --account NAME --config FILE`: the Microsoft 365 side of one account, as the
// exact commands an administrator runs (Azure CLI, then Exchange Online PowerShell) with the
// account's values filled in. Pure text from the configuration: it contacts nothing and never
// prints a secret. README ("Guided setup") says which commands come from which Microsoft page.
import type { AccountConfig } from '../config/index.js';
import type { CloudName } from '../config/clouds.js';

/** Office 365 Exchange Online and Microsoft Graph: the resource apps, the same appId in every cloud. */
const EXCHANGE_API = '00000002-0000-0ff1-ce00-000000000000';
const GRAPH_API = '00000003-0000-0000-c000-000000000000';

/** `az cloud set --name` and `Connect-ExchangeOnline -ExchangeEnvironmentName` per cloud. */
const CLOUD_TOOLS: Record<CloudName, { az: string; exchange: string | null }> = {
  global: { az: 'AzureCloud', exchange: null },
  usgov: { az: 'AzureUSGovernment', exchange: 'O365USGovGCCHigh' },
  'usgov-dod': { az: 'AzureUSGovernment', exchange: 'O365USGovDoD' },
  china: { az: 'AzureChinaCloud', exchange: 'O365China' },
};

/** What setup reads of an account; `transport` may be `hve` (High Volume Email). */
export type SetupAccount = Pick<
  AccountConfig,
  'name' | 'tenantId' | 'clientId' | 'cloud' | 'flow' | 'mailbox' | 'sendAs' | 'largeMessages' | 'clientSecretExpires' | 'clientCertificate' | 'scope' | 'graphScope' | 'smtpHost' | 'smtpPort' | 'graphHost' | 'authorityHost'
> & {
  transport: AccountConfig['transport'] | 'hve';
  /** How the file gives the secret (a ${...} reference), or undefined when it is written in the file. */
  clientSecretSource?: string;
  hasClientSecret: boolean;
};

interface Permission {
  api: string;
  apiName: string;
  value: string;
  type: 'Role' | 'Scope';
  why: string;
}

/** The Entra permissions the account needs: what the transport and flow use. */
export function permissionsFor(account: SetupAccount): Permission[] {
  const delegated = account.flow === 'device-code';
  const exchange = (value: string, why: string): Permission => ({ api: EXCHANGE_API, apiName: 'Office 365 Exchange Online', value, type: delegated ? 'Scope' : 'Role', why });
  const graph = (value: string, why: string): Permission => ({ api: GRAPH_API, apiName: 'Microsoft Graph', value, type: delegated ? 'Scope' : 'Role', why });
  if (account.transport === 'hve') return [exchange('Mail.Send', 'High Volume Email over SMTP with an app-only token (only for the HVE accounts that allow the app)')];
  if (account.transport === 'graph') {
    const out = [graph('Mail.Send', 'Graph sendMail')];
    if (!delegated) out.push(graph('Mail.ReadWrite', 'messages over 4 MB: a draft and an upload session'));
    if (account.largeMessages === 'smtp') out.push(exchange('SMTP.SendAsApp', 'largeMessages: smtp (messages Graph cannot take go over SMTP AUTH)'));
    return out;
  }
  return [exchange(delegated ? 'SMTP.Send' : 'SMTP.SendAsApp', 'SMTP AUTH client submission (XOAUTH2)')];
}

/** The whole text for one account. `configFile` is named in the commands to run afterwards. */
export function setupSteps(account: SetupAccount, configFile: string): string {
  const lines: string[] = [];
  const say = (...text: string[]) => lines.push(...text);
  const tools = CLOUD_TOOLS[account.cloud];
  const delegated = account.flow === 'device-code';
  const hve = account.transport === 'hve';
  const usesSmtpAuth = !hve && (account.transport === 'smtp' || account.largeMessages === 'smtp');
  const display = `m365-relay ${account.name}`;
  const permissions = permissionsFor(account);

  say(
    `Setup of account ${account.name} (${configFile})`,
    `  mailbox ${account.mailbox}, ${describeTransport(account)}, ${delegated ? 'a signed-in user (flow: device-code)' : 'app-only (client credentials)'}, cloud ${account.cloud}`,
    `  tenant ${account.tenantId}, app (client) ID ${account.clientId}`,
    `  token endpoint ${account.authorityHost}, scope ${account.transport === 'graph' ? account.graphScope : account.scope}`,
    '',
    'Run these as an administrator of the tenant (Application Administrator and Exchange Administrator,',
    'or Global Administrator). Lines starting with # are explanations. Bash syntax for the Azure CLI part.',
    '',
    '== 1. Entra ID: the app registration (Azure CLI) ==',
    '',
  );
  if (account.cloud !== 'global') say(`az cloud set --name ${tools.az}`);
  say(
    `az login --tenant ${account.tenantId} --allow-no-subscriptions`,
    '',
    `# The configuration names the app ${account.clientId}. Only if it does not exist yet, create one and`,
    '# put the appId it prints into clientId:',
    `#   az ad app create --display-name "${display}" --sign-in-audience AzureADMyOrg`,
    '',
    '# The enterprise application (service principal) of the app; an error saying it exists is fine:',
    `az ad sp create --id ${account.clientId}`,
    '',
  );

  if (delegated) {
    say(
      '# A signed-in user, no app credential: allow public client flows (the device code sign-in):',
      `az ad app update --id ${account.clientId} --is-fallback-public-client true`,
      '',
    );
  } else if (account.clientCertificate) {
    say(
      '# The credential: the certificate in clientCertificate.certificateFile (its public part only):',
      `az ad app credential reset --id ${account.clientId} --append --cert "@${account.clientCertificate.certificateFile}"`,
      '# The relay warns 30, 7 and 1 days before the certificate expires (its notAfter).',
      '',
    );
  } else {
    const until = account.clientSecretExpires ? `--end-date ${account.clientSecretExpires.slice(0, 10)}` : '--years 1';
    say(
      '# The credential: a new client secret (printed once, as "password"):',
      `az ad app credential reset --id ${account.clientId} --append --display-name "${display}" ${until}`,
      `# Put the password where clientSecret reads it${account.clientSecretSource ? ` (${account.clientSecretSource})` : ''}, never in a file others can read,`,
      `# and its end date into clientSecretExpires${account.clientSecretExpires ? ` (now ${account.clientSecretExpires.slice(0, 10)})` : ''}: the relay warns 30, 7 and 1 days before.`,
      '',
    );
  }

  say(`# The API permission${permissions.length > 1 ? 's' : ''} (${delegated ? 'delegated' : 'application'}):`);
  for (const p of permissions) {
    const variable = `${p.apiName === 'Microsoft Graph' ? 'GRAPH' : 'EXO'}_${p.value.replace(/\W/g, '_').toUpperCase()}`;
    const list = p.type === 'Role' ? 'appRoles' : 'oauth2PermissionScopes';
    say(
      `#   ${p.apiName} ${p.value}: ${p.why}`,
      `${variable}=$(az ad sp show --id ${p.api} --query "${list}[?value=='${p.value}'].id" -o tsv)`,
      `az ad app permission add --id ${account.clientId} --api ${p.api} --api-permissions "$${variable}=${p.type}"`,
    );
  }
  say('', '# Admin consent for the permissions above:', `az ad app permission admin-consent --id ${account.clientId}`, '');
  if (!delegated && !hve) {
    say(
      '# The Object ID of the enterprise application (the service principal), which Exchange needs.',
      "# Not the app registration's own object ID (az ad app show): that one is refused.",
      `SP_OBJECT_ID=$(az ad sp show --id ${account.clientId} --query id -o tsv)`,
      'echo "$SP_OBJECT_ID"',
      '',
    );
  }

  say('== 2. Exchange Online (PowerShell, module ExchangeOnlineManagement) ==', '', tools.exchange ? `Connect-ExchangeOnline -ExchangeEnvironmentName ${tools.exchange}` : 'Connect-ExchangeOnline', '');
  if (hve) {
    say(
      `# Allow the app to send as the High Volume Email account ${account.mailbox} (up to 10 apps per account;`,
      '# takes up to 5 minutes). HVE takes internal recipients only.',
      `Add-HVEAppAccess -Identity ${account.mailbox} -AppIds ${account.clientId}`,
      '',
    );
  } else if (delegated) {
    say(`# ${account.mailbox} signs in itself: no service principal or mailbox permission is needed.`, '');
  } else {
    const objectId = '<SP_OBJECT_ID printed above>';
    const roles = account.transport === 'graph' ? ['Application Mail.Send', 'Application Mail.ReadWrite'] : ['Application SMTP.SendAsApp'];
    if (account.largeMessages === 'smtp' && account.transport === 'graph') roles.push('Application SMTP.SendAsApp');
    say(
      account.transport === 'graph' && account.largeMessages !== 'smtp'
        ? '# Only for b) below: register the service principal in Exchange (AppId = the app, ObjectId = the enterprise application):'
        : '# Register the service principal in Exchange (AppId = the app, ObjectId = the enterprise application):',
      `New-ServicePrincipal -AppId ${account.clientId} -ObjectId ${objectId} -DisplayName "${display}"`,
      '',
      `# Then give it the mailbox ${account.mailbox}, in ONE of two ways:`,
    );
    if (usesSmtpAuth) {
      say(
        '# a) the mailbox permission (SMTP AUTH):',
        `Add-MailboxPermission -Identity ${account.mailbox} -User ${objectId} -AccessRights FullAccess`,
      );
    } else {
      say(`# a) the tenant-wide Entra permission granted above (Mail.Send lets the app send as EVERY mailbox), or`);
    }
    say(
      '# b) RBAC for Applications, limited to this mailbox by a management scope' + (account.transport === 'graph' ? ' (then remove the Entra' : ''),
      ...(account.transport === 'graph' ? ['#    Graph permissions granted above: permissions add up, and the Entra grant covers every mailbox):'] : []),
      `New-ManagementScope -Name "${display}" -RecipientRestrictionFilter "PrimarySmtpAddress -eq '${account.mailbox}'"`,
      ...roles.map((role) => `New-ManagementRoleAssignment -App ${objectId} -Role "${role}" -CustomResourceScope "${display}"`),
      `Test-ServicePrincipalAuthorization -Identity ${objectId} -Resource ${account.mailbox}`,
      '',
    );
  }
  if (usesSmtpAuth) {
    say(
      '# SMTP AUTH must be on for the mailbox (it may be off for the whole tenant; this overrides it):',
      `Set-CASMailbox -Identity ${account.mailbox} -SmtpClientAuthenticationDisabled $false`,
      '',
    );
  }
  const senders = account.sendAs.filter((s) => !s.startsWith('@'));
  if (!hve && senders.length > 0) {
    say('# The addresses in sendAs: the mailbox may send as each of them:');
    for (const sender of senders) say(`Add-RecipientPermission -Identity ${sender} -Trustee ${account.mailbox} -AccessRights SendAs -Confirm:$false`);
    say('');
  }

  say('== 3. Check ==', '');
  if (delegated) say('# Sign the mailbox in once (device code; open the URL it prints and sign in as the mailbox):', `m365-relay login --config ${configFile} --account ${account.name}`, '');
  say(
    `# Exchange can take up to an hour to apply permission changes${hve ? ' (HVE app access: 5 minutes)' : ''}; then:`,
    `m365-relay check-config --config ${configFile} --connect`,
    '',
  );
  return `${lines.join('\n')}\n`;
}

function describeTransport(account: SetupAccount): string {
  if (account.transport === 'graph') return `Microsoft Graph ${account.graphHost}${account.largeMessages === 'smtp' ? ` (large messages over SMTP ${account.smtpHost}:${account.smtpPort})` : ''}`;
  if (account.transport === 'hve') return `High Volume Email ${account.smtpHost}:${account.smtpPort}`;
  return `SMTP AUTH ${account.smtpHost}:${account.smtpPort}`;
}

/**
 * The configuration's account as setup reads it: the secret's reference as written in the file
 * (`rawSecret`, e.g. "${M365_SECRET}" or "${file:/run/secrets/m365}"), never its value.
 */
export function setupAccountOf(account: AccountConfig, rawSecret?: unknown): SetupAccount {
  const { clientSecret: secret, ...rest } = account;
  const reference = typeof rawSecret === 'string' && /^\$\{[^}]+\}$/.test(rawSecret.trim()) ? rawSecret.trim() : undefined;
  return { ...rest, hasClientSecret: secret !== undefined, ...(reference !== undefined && { clientSecretSource: reference }) };
}
