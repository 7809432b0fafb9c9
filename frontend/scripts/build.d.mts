export const BUNDLE_PATH: string;
export function buildBundle(): Promise<Uint8Array>;
export function buildPackage(): Promise<void>;
export function bundleIsFresh(): Promise<boolean>;
