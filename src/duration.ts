// Durations in configuration and requests: "90s", "15m", "1h", "7d", "1h30m", or a number of seconds.
// Kept to whole seconds because JWT times (iat, nbf, exp) are whole seconds.

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const DURATION = /^(?:\d+[smhd])+$/;
const PART = /(\d+)([smhd])/g;

/** Parses a duration into whole seconds; returns undefined when the value is not a duration. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return parseDuration(Number(text));
  if (!DURATION.test(text)) return undefined;
  let seconds = 0;
  for (const [, amount, unit] of text.matchAll(PART)) seconds += Number(amount) * UNIT_SECONDS[unit!]!;
  return Number.isSafeInteger(seconds) ? seconds : undefined;
}

/** Formats seconds the way an operator writes them: 3600 → "1h", 5400 → "1h30m". */
export function formatDuration(seconds: number): string {
  let rest = Math.round(seconds);
  if (rest === 0) return '0s';
  let out = '';
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out;
}
