// WHIP/WHEP helpers shared by the interop pages. The page does the whole exchange itself (fetch with CORS,
// as a web app would); the harness reads `window.braidState` and calls `window.braidStats()` over DevTools.
'use strict';

window.braidState = { step: 'loading', error: null, location: null, connectionState: 'new', log: [] };

function braidStep(step) {
    window.braidState.step = step;
    window.braidState.log.push(`${new Date().toISOString()} ${step}`);
}

function braidFail(error) {
    window.braidState.error = `${window.braidState.step}: ${error && error.message ? error.message : error}`;
    window.braidState.log.push(`${new Date().toISOString()} error ${window.braidState.error}`);
}

// Posts the offer to a WHIP or WHEP endpoint (RFC 9725 §4.2) and applies the answer.
async function braidExchange(pc, endpoint) {
    braidStep('createOffer');
    await pc.setLocalDescription(await pc.createOffer());
    // The node answers without trickle ICE: send the offer once gathering is done (bounded wait).
    braidStep('gathering');
    await new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') { resolve(); return; }
        const timer = setTimeout(resolve, 3000);
        pc.addEventListener('icegatheringstatechange', () => {
            if (pc.iceGatheringState === 'complete') { clearTimeout(timer); resolve(); }
        });
    });
    braidStep(`POST ${endpoint}`);
    const response = await fetch(endpoint, {
        method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp,
    });
    const body = await response.text();
    if (response.status !== 201) {
        throw new Error(`HTTP ${response.status}: ${body.trim().slice(0, 300)}`);
    }
    window.braidState.location = response.headers.get('Location');
    window.braidState.answer = body;
    braidStep('setRemoteDescription');
    await pc.setRemoteDescription({ type: 'answer', sdp: braidVia(body) });
    braidStep('connecting');
    const update = () => {
        window.braidState.connectionState = pc.connectionState;
        if (pc.connectionState === 'connected') { braidStep('connected'); }
        if (pc.connectionState === 'failed') { braidFail('peer connection failed'); }
    };
    pc.addEventListener('connectionstatechange', update);
    update();
}

function braidQuery(name, fallback) {
    const value = new URLSearchParams(location.search).get(name);
    return value === null ? fallback : value;
}

// `?via=PORT`: the harness's lossy link (lossy_link.py) listens on PORT of the node's address and relays to
// the node, so the answer's host candidates are pointed at it.
function braidVia(sdp) {
    const port = braidQuery('via', null);
    if (port === null) { return sdp; }
    return sdp.replace(/^(a=candidate:\S+ \d+ udp \d+ \S+ )\d+( typ host)/gim, `$1${port}$2`);
}
