// Circuit breaker for the sign path: after `failureThreshold` consecutive failures to reach Vault, calls fail
// at once (a dead Vault costs callers microseconds, not a timeout each) until `cooldown` has passed; then one
// probe call goes through, and its outcome closes the circuit or opens it again for a longer cooldown. Pure
// state machine: the clock is an argument, so every transition is tested without waiting.

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  failureThreshold: number;
  /** First cooldown, ms; doubles on each failed probe up to maxCooldownMs. */
  cooldownMs: number;
  maxCooldownMs: number;
}

// The cooldown stops at 2 s so that signing resumes within about 2 s of Vault returning, even between health probes.
export const DEFAULT_BREAKER: BreakerOptions = { failureThreshold: 3, cooldownMs: 500, maxCooldownMs: 2000 };

export class CircuitBreaker {
  readonly #options: BreakerOptions;
  #state: CircuitState = 'closed';
  #failures = 0;
  #openedAt = 0;
  #cooldown: number;
  #probeOut = false;
  #onChange: (state: CircuitState) => void;

  constructor(options: BreakerOptions = DEFAULT_BREAKER, onChange: (state: CircuitState) => void = () => {}) {
    this.#options = options;
    this.#cooldown = options.cooldownMs;
    this.#onChange = onChange;
  }

  get state(): CircuitState {
    return this.#state;
  }

  /** Milliseconds until a probe is allowed (0 when calls may go). */
  retryAfterMs(now: number): number {
    return this.#state === 'open' ? Math.max(0, this.#openedAt + this.#cooldown - now) : 0;
  }

  /** Whether a call may go now. In half-open state, only one probe at a time. */
  allow(now: number): boolean {
    if (this.#state === 'closed') return true;
    if (this.#state === 'open') {
      if (now < this.#openedAt + this.#cooldown) return false;
      this.#set('half-open');
    }
    if (this.#probeOut) return false;
    this.#probeOut = true;
    return true;
  }

  success(): void {
    this.#failures = 0;
    this.#probeOut = false;
    this.#cooldown = this.#options.cooldownMs;
    if (this.#state !== 'closed') this.#set('closed');
  }

  failure(now: number): void {
    this.#failures++;
    if (this.#state === 'half-open') {
      this.#probeOut = false;
      this.#cooldown = Math.min(this.#cooldown * 2, this.#options.maxCooldownMs);
      this.#open(now);
    } else if (this.#state === 'closed' && this.#failures >= this.#options.failureThreshold) {
      this.#open(now);
    }
  }

  #open(now: number): void {
    this.#openedAt = now;
    this.#set('open');
  }

  #set(state: CircuitState): void {
    this.#state = state;
    this.#onChange(state);
  }
}
