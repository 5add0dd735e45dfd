/**
 * `work`, or a rejection "`what` timed out after `ms` ms" once `ms` pass first. The timer is
 * cleared either way, so it never outlives the race nor holds the process open. One promise and
 * one timer a call (every Redis call passes here): no race array, no async frame.
 */
export function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    work.then((v) => {
      clearTimeout(timer);
      resolve(v);
    }, (err: unknown) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
