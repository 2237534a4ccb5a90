import nodemailer from 'nodemailer';
import type { Simulator } from '../../src/simulator/index.js';

/** A nodemailer client for the simulator's submission port: STARTTLS required, XOAUTH2 with `accessToken` as `user`. */
export function xoauth2Transport(sim: Simulator, accessToken: string, user: string) {
  return nodemailer.createTransport({
    host: sim.smtpHost,
    port: sim.smtpPort,
    secure: false,
    requireTLS: true,
    auth: { type: 'OAuth2', user, accessToken },
    connectionTimeout: 5_000,
    greetingTimeout: 5_000,
    socketTimeout: 5_000,
  });
}
