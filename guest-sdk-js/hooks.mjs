// Module resolution hook for register.mjs.
const ENTRIES = {
  "@fieldhook/guest-sdk": "./index.js",
  "@fieldhook/guest-sdk/testing": "./testing.js",
  "@fieldhook/guest-sdk/vendors": "./vendors.js",
};

export async function resolve(specifier, context, next) {
  const entry = ENTRIES[specifier];
  if (entry) return { url: new URL(entry, import.meta.url).href, shortCircuit: true };
  return next(specifier, context);
}
