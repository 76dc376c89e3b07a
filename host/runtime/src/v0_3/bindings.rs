//! Host bindings for `fieldhook:plugin@0.3.x`, generated from `wit/0.3/`.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../../wit/0.3",
    world: "fieldhook:plugin/plugin",
    exports: { default: async },
    imports: {
        // As in 0.2: a missing event handle traps.
        "fieldhook:plugin/types": trappable,
        // `emit` waits for the store's sync before it returns.
        "fieldhook:plugin/events": async,
    },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        // The same host view as 0.2's event: one table entry type.
        "fieldhook:plugin/types.event": crate::v0_2::EventView,
    },
    require_store_data_send: true,
});
