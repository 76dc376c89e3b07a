//! Host bindings for `fieldhook:plugin@0.1.x`, generated from `wit/`.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../../wit/0.1",
    world: "fieldhook:plugin/plugin",
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
    },
    require_store_data_send: true,
});
