import { loadFailure, loadNativeAddon, NATIVE_BUILD_COMMAND } from '../../lib/media/native.js';
import { relayCases } from './relay-cases.js';

const skip = loadNativeAddon() ? false : `native addon not built (${loadFailure()}); run ${NATIVE_BUILD_COMMAND}`;
relayCases('native', skip);
