// Every page talks to the public REST API only; errors arrive as RFC 7807 problem documents.

export class ApiError extends Error {
  constructor(public status: number, public title: string, public detail: string) {
    super(`${title}: ${detail}`);
  }
}

export async function get<T>(path: string): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" } });
  } catch (e) {
    throw new ApiError(0, "The service cannot be reached", String(e));
  }
  if (!response.ok) {
    let title = `HTTP ${response.status}`;
    let detail = `${response.statusText} (GET ${path})`;
    try {
      const problem = await response.json();
      title = problem.title ?? title;
      // A problem without a detail still says which call failed.
      detail = problem.detail ?? detail;
    } catch {
      // Not a problem document: keep the status line.
    }
    throw new ApiError(response.status, title, detail);
  }
  return (await response.json()) as T;
}

/** GET that answers null for 404 (a resource without a plan or model yet). */
export async function getOptional<T>(path: string): Promise<T | null> {
  try {
    return await get<T>(path);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

export const enc = encodeURIComponent;

export interface Resource {
  name: string;
  kind: "service" | "job";
  group: string;
  loadMetric: string;
  policy: Record<string, unknown>;
  metrics: string[];
  sources?: Record<string, SourceState>;
}

/** A Prometheus source feeding one metric, with its pull state (GET /api/v1/resources/{name}). */
export interface SourceState {
  query: string;
  server: string;
  origin: "resource" | "group";
  watermark?: string;
  lastSuccessAt?: string;
  lastError?: string;
  lastErrorAt?: string;
  failures: number;
}

export interface ResourcePage { items: Resource[]; next?: string }

export interface Bucket { timestamp: string; mean: number; max: number; min: number; count: number }

export interface ForecastPoint { timestamp: string; forecast: number; lower: number; upper: number }

export interface StoredForecast { modelVersion: number; algorithm?: string; generatedAt: string; level?: number; beatsSeasonalNaive?: boolean; points: ForecastPoint[] }

export interface ModelVersion {
  version: number; metric: string; status: string; algorithm?: string; runId?: number; trainedAt: string;
  trainPoints?: number; backtestOrigins?: number; mase?: number; smape?: number; coverage?: number;
  seasonalNaiveMase?: number; beatsSeasonalNaive?: boolean; error?: string;
}

export interface TrainingRun {
  id: number; trigger: string; status: string; progress: { done: number; total: number; failed: number; percent: number };
  createdAt: string; startedAt?: string; finishedAt?: string; seconds?: number; error?: string; planning?: string;
}

export interface Explanation { sentence?: string; load?: number; capacity?: number; bound?: string; rawCount?: number }

export interface PlanStep {
  hour: string; start: string; end: string; kind: string; count: number; replicas?: number; parallelism?: number;
  cpu?: number; memory?: number; source: string; capacityShortfall?: boolean; shortfall?: number;
  forecastOnly?: boolean; windowApplied?: boolean; explanation?: Explanation;
}

export interface PlanVersionSummary { id: number; status: string; generatedAt: string; horizonStart: string; mode: string; notes: string[] }

export interface PlanVersionPage { resource: string; problem?: { missing: string[] }; items: PlanVersionSummary[] }

export interface PlanVersionView { resource: string; version: PlanVersionSummary; steps: PlanStep[] }

export interface CapacityHour {
  hour: string; cpu: number; memory: number; resources: number; withoutRequests: number;
  cpuQuota?: number; memoryQuota?: number; freeCpu?: number; freeMemory?: number; cpuShortfall: number; memoryShortfall: number;
}

export interface CapacityView { group?: string; quota?: { cpu?: number; memory?: number }; hours?: CapacityHour[]; fleet: CapacityHour[] }
