export function render(manifest: unknown): string;
