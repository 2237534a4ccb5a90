/**
 * Endpoints of the Microsoft 365 clouds. `cloud:` picks one preset; every value can still be set on
 * its own key (authorityHost, smtpHost, graphHost, scope, graphScope) and an explicit key always wins.
 *
 * Each value says whether Microsoft's documentation confirms it, and where. "Unconfirmed" means we
 * found it only in third-party tools and configurations: it is our best knowledge, not Microsoft's
 * word, and an administrator of such a tenant should check it (and override the key if needed).
 * Pages cited:
 *   [graph-clouds]  learn.microsoft.com/graph/deployments (Microsoft Graph national cloud deployments)
 *   [graph-scopes]  learn.microsoft.com/graph/sdks/national-clouds ("Any permission scope value (including
 *                   the .default scope) that contains the Microsoft Graph domain MUST use the domain of
 *                   the Microsoft Graph service root endpoint for the national cloud deployment")
 *   [exo-oauth]     learn.microsoft.com/exchange/client-developer/legacy-protocols/
 *                   how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
 *   [mfd]           learn.microsoft.com/exchange/mail-flow-best-practices/how-to-set-up-a-multifunction-
 *                   device-or-application-to-send-email-using-microsoft-365-or-office-365
 *   [gcch-ep]       learn.microsoft.com/microsoft-365/enterprise/microsoft-365-u-s-government-gcc-high-endpoints
 *   [dod-ep]        learn.microsoft.com/microsoft-365/enterprise/microsoft-365-u-s-government-dod-endpoints
 *   [21v-ep]        learn.microsoft.com/microsoft-365/enterprise/urls-and-ip-address-ranges-21vianet
 */

export const CLOUD_NAMES = ['global', 'usgov', 'usgov-dod', 'china'] as const;
export type CloudName = (typeof CLOUD_NAMES)[number];

export interface CloudPreset {
  /** Entra ID (token) host, an https origin. */
  authorityHost: string;
  /** Exchange Online SMTP client submission host (port 587, STARTTLS). */
  smtpHost: string;
  /** Microsoft Graph service root, an https origin. */
  graphHost: string;
  /** Token scope for SMTP AUTH with app-only tokens (client credentials). */
  smtpAppScope: string;
  /** Token scope for SMTP AUTH with a signed-in user (device code); offline_access is added by the sign-in. */
  smtpDelegatedScope: string;
  /** Token scope for Graph sendMail with app-only tokens. */
  graphAppScope: string;
  /** Token scope for Graph sendMail with a signed-in user. */
  graphDelegatedScope: string;
}

export const CLOUDS: Readonly<Record<CloudName, Readonly<CloudPreset>>> = {
  // Worldwide, and also GCC (Government Community Cloud, "moderate"), which uses the worldwide endpoints [graph-clouds].
  global: {
    authorityHost: 'https://login.microsoftonline.com', // confirmed [graph-clouds]
    smtpHost: 'smtp.office365.com', // confirmed [mfd] (smtp.office365.com, port 587, STARTTLS)
    graphHost: 'https://graph.microsoft.com', // confirmed [graph-clouds]
    smtpAppScope: 'https://outlook.office365.com/.default', // confirmed [exo-oauth] (client credentials)
    smtpDelegatedScope: 'https://outlook.office.com/SMTP.Send', // confirmed [exo-oauth] (table of scopes)
    graphAppScope: 'https://graph.microsoft.com/.default', // confirmed [graph-scopes]
    graphDelegatedScope: 'https://graph.microsoft.com/Mail.Send', // confirmed [graph-scopes] (full form of Mail.Send)
  },
  // Microsoft 365 GCC High (US Government L4).
  usgov: {
    authorityHost: 'https://login.microsoftonline.us', // confirmed [graph-clouds], [gcch-ep] (ID 13)
    // Confirmed [gcch-ep] (ID 5: outlook.office365.us, TCP 25, 587, ...). smtp.office365.us is widely
    // used by third parties but is not in Microsoft's endpoint list, so the listed name is the preset.
    smtpHost: 'outlook.office365.us',
    graphHost: 'https://graph.microsoft.us', // confirmed [graph-clouds], [gcch-ep] (ID 13)
    smtpAppScope: 'https://outlook.office365.us/.default', // unconfirmed (third-party tools agree on it)
    smtpDelegatedScope: 'https://outlook.office365.us/SMTP.Send', // unconfirmed (by analogy with the resource above)
    graphAppScope: 'https://graph.microsoft.us/.default', // confirmed by the rule in [graph-scopes]
    graphDelegatedScope: 'https://graph.microsoft.us/Mail.Send', // confirmed by the rule in [graph-scopes]
  },
  // Microsoft 365 DoD (US Government L5).
  'usgov-dod': {
    authorityHost: 'https://login.microsoftonline.us', // confirmed [graph-clouds], [dod-ep] (ID 13)
    smtpHost: 'outlook-dod.office365.us', // confirmed [dod-ep] (ID 4: outlook-dod.office365.us, TCP 25, 587, ...)
    graphHost: 'https://dod-graph.microsoft.us', // confirmed [graph-clouds], [dod-ep] (ID 13)
    smtpAppScope: 'https://outlook-dod.office365.us/.default', // unconfirmed (third-party tools agree on it)
    smtpDelegatedScope: 'https://outlook-dod.office365.us/SMTP.Send', // unconfirmed (by analogy)
    graphAppScope: 'https://dod-graph.microsoft.us/.default', // confirmed by the rule in [graph-scopes]
    graphDelegatedScope: 'https://dod-graph.microsoft.us/Mail.Send', // confirmed by the rule in [graph-scopes]
  },
  // Microsoft 365 operated by 21Vianet (China).
  china: {
    // Confirmed [graph-clouds]. [21v-ep] also lists login.partner.microsoftonline.cn (ID 17), which
    // works as an override.
    authorityHost: 'https://login.chinacloudapi.cn',
    // Unconfirmed: [21v-ep] lists *.partner.outlook.cn for ports 80 and 443 only; smtp.partner.outlook.cn:587
    // is what 21Vianet tenants use in third-party configurations.
    smtpHost: 'smtp.partner.outlook.cn',
    graphHost: 'https://microsoftgraph.chinacloudapi.cn', // confirmed [graph-clouds]
    smtpAppScope: 'https://partner.outlook.cn/.default', // unconfirmed (third-party tools agree on it)
    smtpDelegatedScope: 'https://partner.outlook.cn/SMTP.Send', // unconfirmed (by analogy)
    graphAppScope: 'https://microsoftgraph.chinacloudapi.cn/.default', // confirmed by the rule in [graph-scopes]
    graphDelegatedScope: 'https://microsoftgraph.chinacloudapi.cn/Mail.Send', // confirmed by the rule in [graph-scopes]
  },
};
