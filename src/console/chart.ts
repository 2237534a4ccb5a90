import { html, type SafeHtml } from './html.js';

export interface HourFigures {
  hourStart: number;
  delivered: number;
  failed: number;
}

const HOUR_MS = 3_600_000;

/**
 * The 24 hours ending with the current one, each with its figures (hours the mail log has no row
 * for count zero), oldest first.
 */
export function last24Hours(rows: readonly HourFigures[], now: number): HourFigures[] {
  const current = Math.floor(now / HOUR_MS) * HOUR_MS;
  const byHour = new Map(rows.map((r) => [Math.floor(r.hourStart / HOUR_MS) * HOUR_MS, r]));
  return Array.from({ length: 24 }, (_, i) => {
    const hourStart = current - (23 - i) * HOUR_MS;
    const row = byHour.get(hourStart);
    return { hourStart, delivered: row?.delivered ?? 0, failed: row?.failed ?? 0 };
  });
}

/** Delivered and failed per hour as stacked bars, drawn on the server (no script, no library). */
export function hourlyChart(hours: readonly HourFigures[]): SafeHtml {
  const width = 720;
  const height = 170;
  const top = 10;
  const bottom = 20;
  const left = 30;
  const plot = height - top - bottom;
  const slot = (width - left) / hours.length;
  const max = Math.max(1, ...hours.map((h) => h.delivered + h.failed));
  const scale = (n: number) => (n / max) * plot;
  const delivered = hours.reduce((n, h) => n + h.delivered, 0);
  const failed = hours.reduce((n, h) => n + h.failed, 0);
  const bars = hours.map((h, i) => {
    const x = (left + i * slot + 2).toFixed(1);
    const w = (slot - 4).toFixed(1);
    const dh = scale(h.delivered);
    const fh = scale(h.failed);
    const label = `${hourLabel(h.hourStart)} UTC: ${h.delivered} delivered, ${h.failed} failed`;
    return html`<g><title>${label}</title>${h.delivered > 0 ? html`<rect class="delivered" x="${x}" y="${(top + plot - dh).toFixed(1)}" width="${w}" height="${dh.toFixed(1)}"/>` : ''}${
      h.failed > 0 ? html`<rect class="failed" x="${x}" y="${(top + plot - dh - fh).toFixed(1)}" width="${w}" height="${fh.toFixed(1)}"/>` : ''
    }${i % 3 === 0 ? html`<text x="${x}" y="${height - 5}">${hourLabel(h.hourStart)}</text>` : ''}</g>`;
  });
  return html`<svg class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="${`Last 24 hours: ${delivered} delivered, ${failed} failed`}">
<line class="grid" x1="${left}" y1="${top}" x2="${width}" y2="${top}"/><line class="grid" x1="${left}" y1="${top + plot}" x2="${width}" y2="${top + plot}"/>
<text x="0" y="${top + 8}">${max}</text><text x="0" y="${top + plot}">0</text>
${bars}</svg>`;
}

function hourLabel(ms: number): string {
  return `${new Date(ms).toISOString().slice(11, 13)}:00`;
}
