// PluginError: the one error type of the SDK (no host imports here, so the
// vendor views and unit tests load under plain Node).

/** A failure to handle an event; throw it from `handle`. */
export class PluginError extends Error {
  constructor(message, retryable = false) {
    super(message);
    this.name = "PluginError";
    this.retryable = Boolean(retryable);
  }
  /** Running again later may succeed (a fetch timed out, a 503). */
  static retry(message) {
    return new PluginError(message, true);
  }
  /** Running again never will (the payload is not what the plugin handles). */
  static fatal(message) {
    return new PluginError(message, false);
  }
}
