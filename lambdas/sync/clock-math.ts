/** Seconds from one DATETIME text (UTC) to another; never negative. */
export function secondsBetween(from: string, to: string): number {
  const at = (text: string) => Date.parse(`${text.replace(' ', 'T')}Z`);
  const seconds = (at(to) - at(from)) / 1000;
  return Number.isFinite(seconds) ? Math.max(0, Math.round(seconds * 1000) / 1000) : 0;
}
