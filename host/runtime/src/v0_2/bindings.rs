//! Host bindings for `fieldhook:plugin@0.2.x`, generated from `wit/0.2/`.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../../wit/0.2",
    world: "fieldhook:plugin/plugin",
    exports: { default: async },
    // The event's accessors look their resource up in the store's table; a
    // handle that is not there traps rather than answering something made up.
    imports: { "fieldhook:plugin/types": trappable },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "fieldhook:plugin/types.event": super::EventView,
    },
    require_store_data_send: true,
});
