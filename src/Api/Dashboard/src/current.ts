import { get, Explanation } from "./api";

/** The next step that differs, for pre-scaling. */
export interface NextStep { replicas?: number; parallelism?: number; validFrom: string; validUntil: string; source: string }

/** The desired state of one resource now, as GET /api/v1/plans/current reports it. */
export interface CurrentState {
  resource: string;
  count: number;
  source: string;
  stale: boolean;
  forecastOnly: boolean;
  capacityShortfall: boolean;
  validFrom?: string;
  validUntil?: string;
  planVersion?: number;
  explanation?: Explanation;
  next?: NextStep | null;
  /** Set when the resource cannot be answered: what is missing (no history and no policy bounds). */
  missing?: string[];
}

// The batch endpoint's items carry `replicas` (services) or `parallelism` (jobs).
type Raw = Omit<CurrentState, "count"> & { replicas?: number; parallelism?: number; capacityShortfall?: boolean };

export async function currentStates(): Promise<Map<string, CurrentState>> {
  const all = new Map<string, CurrentState>();
  let after: string | undefined;
  do {
    const page = await get<{ items: Raw[]; next?: string }>(`/api/v1/plans/current?limit=10000${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    for (const item of page.items) {
      all.set(item.resource, normalise(item));
    }
    after = page.next;
  } while (after);
  return all;
}

export async function currentState(name: string): Promise<CurrentState> {
  return normalise(await get<Raw>(`/api/v1/resources/${encodeURIComponent(name)}/plan/current`));
}

function normalise(raw: Raw): CurrentState {
  return { ...raw, count: raw.replicas ?? raw.parallelism ?? 0, capacityShortfall: raw.capacityShortfall ?? false, stale: raw.stale ?? false, forecastOnly: raw.forecastOnly ?? false };
}
