// `node --import <this file> --test ...`: lets plugin code and tests import
// "@fieldhook/guest-sdk", ".../testing" and ".../vendors" from this
// directory without installing the SDK as a package.
import { register } from "node:module";

register("./hooks.mjs", import.meta.url);
