// The sign retry policy: what one Vault call of a batch does when it fails. One more try, only inside the callers'
// deadline, after a dropped connection or a 5xx (a leader election); after a 403, one more try only if auth finds
// that Signet's token was replaced. A 403 with a valid token is the policy's refusal, and says which path it lacks.

import { VaultUnavailableError } from '../errors.ts';
import type { VaultAuth } from '../vault/auth.ts';
import { isRetryable } from '../vault/http.ts';
import type { Transit } from '../vault/transit.ts';
import type { SendBatch } from './batcher.ts';

export interface SignRetryDeps {
  transit: Pick<Transit, 'signBatch'>;
  auth: Pick<VaultAuth, 'current' | 'afterRefusal'>;
  /** Transit's mount, named when Vault's policy refuses a path. */
  mount: string;
  /** A second try is made, for this reason (signet_sign_retries_total). */
  onRetry: (reason: string) => void;
}

/** The batcher's Vault call for one batch of signing inputs, with the retry policy above. */
export function retryingSend({ transit, auth, mount, onRetry }: SignRetryDeps): SendBatch {
  return async (lane, inputs, deadline) => {
    // A try may run until the latest caller deadline in the batch; callers with earlier deadlines are answered
    // by the batcher at theirs, without aborting the call (an abort counts as Vault's silence).
    const left = () => deadline - performance.now();
    const attempt = () => transit.signBatch(lane.name, lane.version, lane.spec, inputs, Math.max(1, Math.ceil(left())));
    const token = auth.current();
    try {
      return await attempt();
    } catch (error) {
      // One more try, only inside the callers' deadline: after a dropped connection or a 5xx (a leader election).
      if (isRetryable(error) && left() > 200) {
        onRetry((error as VaultUnavailableError).reason);
        await new Promise((r) => setTimeout(r, 25 + Math.random() * 50));
        return await attempt();
      }
      if (error instanceof VaultUnavailableError && error.reason === 'refused') {
        // A 403: auth looks up the token (one lookup for every call that met it) and logs in again only if
        // Vault says it is gone. Try again with the new token; a 403 with a valid token is a policy's refusal.
        const verdict = await auth.afterRefusal(token, left() - 100);
        if (verdict === 'replaced' && left() > 50) {
          onRetry('refused');
          return await attempt();
        }
        if (verdict === 'valid') {
          throw new VaultUnavailableError('sign', `Vault refused to sign with key "${lane.name}" (permission denied) although Signet's token is valid: `
            + `the token's policy lacks ${mount}/${lane.spec.operation}/${lane.name}; see vault-policy.hcl`, 5, 'refused');
        }
      }
      throw error;
    }
  };
}
