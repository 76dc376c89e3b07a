// The fieldhook JavaScript SDK under plain Node (unit tests): the same API
// as the component entry (fieldhook.js), with no host until a FakeHost from
// "@fieldhook/guest-sdk/testing" is installed.
export * from "./core.js";
export * as vendors from "./vendors.js";
