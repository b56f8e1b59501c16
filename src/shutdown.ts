// The process's stop signals: SIGINT and SIGTERM run `close` once, then exit 0 (or 1 when closing failed).

export function onSignals(close: () => Promise<void>): void {
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      close().then(() => process.exit(0), () => process.exit(1));
    });
  }
}
