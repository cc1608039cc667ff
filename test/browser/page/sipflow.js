// The in-browser half of the test: a JsSIP user agent that connects over
// WebSocket (wss://), registers, calls a target, hangs up and unregisters
// (mode "call"), or registers, answers an incoming call, waits for the
// caller's BYE and unregisters (mode "answer").
//
// run.mjs loads this page in headless Chromium and calls
//   await window.sipFlow({wss, domain, user, password, target, holdMs, mode, timeouts})
// Each step is reported as it starts and ends through window.reportStep
// (exposed by run.mjs; console.log otherwise), every SIP message on the
// WebSocket through window.reportSip. The promise resolves to
//   {ok, mode, failedStep, error, steps: [{name, ok, ms, detail}],
//    offerSdp, answerSdp, inviteIn, byeIn, byeReply}
// and never rejects; every wait has a timeout, so a hang fails fast.
(function () {
	'use strict';

	// The page shows the steps too (for a screenshot: run.mjs --screenshot).
	const show = (kind, obj) => {
		const el = document.getElementById('log');
		if (!el) {
			return;
		}
		if (kind === 'reportStep') {
			const state = obj.state === 'start' ? '...' : obj.state === 'ok' ? 'OK' : obj.state === 'fail' ? 'FAILED' : '';
			el.textContent += `${obj.name} ${state} ${obj.detail ? obj.detail.split('\n')[0] : ''}\n`;
		} else {
			el.textContent += `    ${obj.dir === 'out' ? '-->' : '<--'} ${obj.firstLine}\n`;
		}
	};

	const report = (kind, obj) => {
		show(kind, obj);
		const fn = window[kind];
		if (typeof fn === 'function') {
			fn(obj);
		} else {
			console.log(kind, JSON.stringify(obj));
		}
	};

	// --- SIP wire tap -----------------------------------------------------

	const sipListeners = new Set();

	function sipSummary(text) {
		const firstLine = text.split('\r\n', 1)[0];
		const m = /^CSeq:\s*(\d+)\s+(\S+)/im.exec(text);
		return { firstLine, cseq: m ? `${m[1]} ${m[2]}` : '' };
	}

	function tap(dir, data) {
		const text = typeof data === 'string' ? data : new TextDecoder().decode(data);
		const s = sipSummary(text);
		const msg = { dir, firstLine: s.firstLine, cseq: s.cseq, text };
		report('reportSip', msg);
		for (const l of sipListeners) {
			l(msg);
		}
	}

	// A WebSocketInterface that shows every SIP message it carries.
	class TapSocket extends JsSIP.WebSocketInterface {
		send(message) {
			tap('out', message);
			return super.send(message);
		}

		_onMessage(ev) {
			tap('in', ev.data);
			super._onMessage(ev);
		}
	}

	// waitSip resolves with the first message (sent or received) matching
	// pred, or rejects after ms.
	function waitSip(pred, ms, what) {
		let listener;
		let timer;
		return new Promise((resolve, reject) => {
			listener = (msg) => {
				if (pred(msg)) {
					resolve(msg);
				}
			};
			sipListeners.add(listener);
			timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms waiting for ${what}`)), ms);
		}).finally(() => {
			sipListeners.delete(listener);
			clearTimeout(timer);
		});
	}

	// countChallenges counts the 401/407 responses to requests whose CSeq
	// matches cseqRe until stop(); text() describes them for a step detail.
	function countChallenges(cseqRe) {
		const codes = [];
		const l = (m) => {
			if (m.dir === 'in' && cseqRe.test(m.cseq) && /^SIP\/2\.0 40[17] /.test(m.firstLine)) {
				codes.push(m.firstLine.slice(8, 11));
			}
		};
		sipListeners.add(l);
		return {
			stop: () => sipListeners.delete(l),
			text: () => (codes.length ? ` after digest challenge (${codes.join(', ')})` : ''),
		};
	}

	// --- events -----------------------------------------------------------

	// waitEvent resolves with {name, data} on the first of okEvents, rejects
	// on the first of failEvents (the error carries .event and .data) or
	// after ms.
	function waitEvent(emitter, okEvents, failEvents, ms, what) {
		const handlers = [];
		let timer;
		return new Promise((resolve, reject) => {
			for (const name of okEvents) {
				const h = (data) => resolve({ name, data });
				handlers.push([name, h]);
				emitter.on(name, h);
			}
			for (const name of failEvents) {
				const h = (data) => {
					const err = new Error(`${what}: got "${name}"${describe(data)}`);
					err.event = name;
					err.data = data;
					reject(err);
				};
				handlers.push([name, h]);
				emitter.on(name, h);
			}
			timer = setTimeout(() => reject(new Error(`${what}: timeout after ${ms} ms`)), ms);
		}).finally(() => {
			clearTimeout(timer);
			for (const [name, h] of handlers) {
				emitter.removeListener(name, h);
			}
		});
	}

	function describe(data) {
		if (!data) {
			return '';
		}
		const parts = [];
		if (data.cause) {
			parts.push(`cause=${data.cause}`);
		}
		if (data.originator) {
			parts.push(`originator=${data.originator}`);
		}
		const r = data.response || data.message;
		if (r && r.status_code) {
			parts.push(`response=${r.status_code} ${r.reason_phrase}`);
		}
		if (data.code) {
			parts.push(`code=${data.code}`);
		}
		if (data.reason) {
			parts.push(`reason=${data.reason}`);
		}
		return parts.length ? ` (${parts.join(', ')})` : '';
	}

	const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

	// --- media ------------------------------------------------------------

	// An audio MediaStream: the fake capture device (Chromium runs with
	// --use-fake-device-for-media-stream --use-fake-ui-for-media-stream),
	// else a tone from an AudioContext.
	async function audioStream(mode) {
		if (mode !== 'tone' && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
			try {
				const s = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
				return { stream: s, source: 'getUserMedia (fake device)' };
			} catch (e) {
				if (mode === 'getUserMedia') {
					throw e;
				}
			}
		}
		const ctx = new AudioContext();
		const osc = ctx.createOscillator();
		const dst = ctx.createMediaStreamDestination();
		osc.connect(dst);
		osc.start();
		return { stream: dst.stream, source: 'AudioContext oscillator' };
	}

	// --- the flow ---------------------------------------------------------

	window.sipFlow = async function sipFlow(o) {
		const t = Object.assign(
			{
				media: 5000, connect: 10000, register: 10000, call: 15000, bye: 5000, unregister: 5000, disconnect: 3000,
				// answer mode: the INVITE after registering, the ACK after
				// answering, the caller's BYE after the ACK
				incoming: 15000, answer: 10000, remoteBye: 10000,
			},
			o.timeouts || {}
		);
		// mode "call" (the default): the browser calls o.target; "answer":
		// it waits for a call, answers it and waits for the caller's BYE.
		const mode = o.mode || 'call';
		const result = {
			ok: false, mode, failedStep: '', error: '', steps: [], answerSdp: '', offerSdp: '',
			// answer mode: the INVITE and the BYE as the browser received
			// them, and the first line of its response to the BYE
			inviteIn: '', byeIn: '', byeReply: '',
		};
		let ua = null;
		let session = null;
		let stream = null;
		// answer mode: resolves with the first incoming RTCSession
		let incoming = null;

		async function step(name, fn) {
			const t0 = performance.now();
			report('reportStep', { name, state: 'start' });
			try {
				const detail = (await fn()) || '';
				const ms = Math.round(performance.now() - t0);
				result.steps.push({ name, ok: true, ms, detail });
				report('reportStep', { name, state: 'ok', ms, detail });
			} catch (e) {
				const ms = Math.round(performance.now() - t0);
				const detail = (e && e.message) || String(e);
				result.steps.push({ name, ok: false, ms, detail });
				report('reportStep', { name, state: 'fail', ms, detail });
				throw Object.assign(new Error(detail), { step: name });
			}
		}

		// --- answer mode -----------------------------------------------------

		// watchIncoming installs the UA's newRTCSession handler before the
		// browser registers (JsSIP answers 405 to an INVITE when nobody
		// listens): the first incoming session is kept, with its events and
		// SDPs recorded as they happen; a second one gets 486.
		function watchIncoming() {
			const inv = { session: null, events: [], sdpError: '', iceState: '', confirmedAt: 0, invite: null, replies: [] };
			// The first INVITE on the wire, and the browser's responses to it.
			sipListeners.add((m) => {
				if (!inv.invite && m.dir === 'in' && /^INVITE /.test(m.firstLine)) {
					inv.invite = m;
				} else if (inv.invite && m.dir === 'out' && / INVITE$/.test(m.cseq) && /^SIP\/2\.0 /.test(m.firstLine)) {
					inv.replies.push(m.firstLine.slice(8));
				}
			});
			inv.promise = new Promise((resolve) => {
				ua.on('newRTCSession', (data) => {
					if (data.originator !== 'remote') {
						return;
					}
					const s = data.session;
					if (inv.session) {
						s.terminate({ status_code: 486, reason_phrase: 'Busy Here (test: one call only)' });
						return;
					}
					inv.session = s;
					s.on('progress', (e) => inv.events.push(`progress ${e.originator}`));
					s.on('accepted', (e) => inv.events.push(`accepted ${e.originator}`));
					s.on('confirmed', (e) => {
						inv.confirmedAt = performance.now();
						inv.events.push(`confirmed ${e.originator}`);
					});
					s.on('peerconnection:setremotedescriptionfailed', (err) => {
						inv.sdpError = (err && (err.message || err.name)) || String(err);
					});
					s.on('sdp', (e) => {
						if (e.type === 'offer') {
							result.offerSdp = e.sdp;
						} else {
							result.answerSdp = e.sdp;
						}
					});
					s.on('peerconnection', (e) => {
						const pc = e.peerconnection;
						pc.addEventListener('iceconnectionstatechange', () => {
							inv.iceState = pc.iceConnectionState;
							report('reportStep', { name: 'answer', state: 'info', detail: `ICE ${inv.iceState}` });
						});
					});
					resolve(s);
				});
			});
			return inv;
		}

		// headers returns the values of header name (and its compact form)
		// in the raw SIP message text, one per comma-separated element.
		function headers(text, name, compact) {
			const out = [];
			for (const line of text.split('\r\n').slice(1)) {
				if (line === '') {
					break;
				}
				const i = line.indexOf(':');
				const n = line.slice(0, i).trim().toLowerCase();
				if (i > 0 && (n === name || n === compact)) {
					out.push(...line.slice(i + 1).split(',').map((v) => v.trim()));
				}
			}
			return out;
		}

		async function answerSteps() {
			await step('incoming', async () => {
				let s;
				try {
					s = await Promise.race([
						incoming.promise,
						sleep(t.incoming).then(() => {
							throw new Error(`no incoming call after ${t.incoming} ms`);
						}),
					]);
				} catch (e) {
					if (incoming.invite) {
						e.message += ` (an INVITE arrived, ${incoming.invite.firstLine}, but JsSIP made no session of it; answered: ${incoming.replies.join(', ') || 'nothing'})`;
					}
					throw e;
				}
				const inviteMsg = incoming.invite;
				if (!inviteMsg) {
					throw new Error('a session but no INVITE on the wire');
				}
				result.inviteIn = inviteMsg.text;
				session = s;
				const vias = headers(inviteMsg.text, 'via', 'v');
				const rr = headers(inviteMsg.text, 'record-route', '');
				return `${inviteMsg.firstLine} from ${s.remote_identity}; Via: ${vias.join(' | ')}; Record-Route: ${rr.length}`;
			});

			await step('answer', async () => {
				const ack = waitSip((m) => m.dir === 'in' && /^ACK /.test(m.firstLine), t.answer, 'the ACK');
				const ok = waitSip((m) => m.dir === 'out' && / INVITE$/.test(m.cseq) && /^SIP\/2\.0 2\d\d/.test(m.firstLine), t.answer, 'the 200 OK to the INVITE');
				ack.catch(() => {});
				ok.catch(() => {});
				const w = waitEvent(session, ['confirmed'], ['failed', 'ended'], t.answer, 'answering the call');
				session.answer({
					mediaStream: stream,
					pcConfig: { iceServers: [], rtcpMuxPolicy: 'require', bundlePolicy: 'balanced' },
				});
				try {
					await w;
				} catch (e) {
					if (incoming.sdpError) {
						e.message += ` - RTCPeerConnection.setRemoteDescription: ${incoming.sdpError}`;
					} else if (e.data && e.data.cause === JsSIP.C.causes.WEBRTC_ERROR) {
						e.message += ' - the browser rejected the offer SDP';
					}
					throw e;
				}
				const resp = await ok;
				await ack;
				const pc = session.connection;
				const remote = pc && pc.remoteDescription ? pc.remoteDescription.type : 'none';
				return `${resp.firstLine.slice(8)} sent with the answer SDP, ACK received; offer accepted (remote description: ${remote}); events: ${incoming.events.join(', ')}`;
			});

			await step('remote-bye', async () => {
				const bye = waitSip((m) => m.dir === 'in' && /^BYE /.test(m.firstLine), t.remoteBye, "the caller's BYE");
				const reply = waitSip((m) => m.dir === 'out' && / BYE$/.test(m.cseq) && /^SIP\/2\.0 /.test(m.firstLine), t.remoteBye, 'the response to the BYE');
				bye.catch(() => {});
				reply.catch(() => {});
				const ended = waitEvent(session, ['ended'], ['failed'], t.remoteBye, 'waiting for the caller to hang up');
				const { data } = await ended;
				const held = Math.round(performance.now() - incoming.confirmedAt);
				const b = await bye;
				result.byeIn = b.text;
				const r = await reply;
				result.byeReply = r.firstLine;
				if (!data || data.originator !== 'remote') {
					throw new Error(`session ended by ${data && data.originator} (cause ${data && data.cause}), not by the caller's BYE`);
				}
				if (!/^SIP\/2\.0 200 /.test(r.firstLine)) {
					throw new Error(`BYE answered ${r.firstLine}`);
				}
				const vias = headers(b.text, 'via', 'v');
				return `${b.firstLine} after ${held} ms up, answered ${r.firstLine.slice(8)}; session ended (cause ${data.cause}, originator remote); Via: ${vias.join(' | ')}`;
			});
		}

		try {
			if (o.debug) {
				JsSIP.debug.enable('JsSIP:*');
			} else {
				JsSIP.debug.disable();
			}

			await step('media', async () => {
				const m = await Promise.race([
					audioStream(o.media || 'auto'),
					sleep(t.media).then(() => {
						throw new Error(`no audio stream after ${t.media} ms`);
					}),
				]);
				stream = m.stream;
				return `${m.source}, ${stream.getAudioTracks().length} audio track(s)`;
			});

			const socket = new TapSocket(o.wss);
			ua = new JsSIP.UA({
				sockets: [socket],
				uri: `sip:${o.user}@${o.domain}`,
				password: o.password || undefined,
				authorization_user: o.password ? o.user : undefined,
				display_name: o.displayName || o.user,
				register: false,
				register_expires: 600,
				session_timers: false,
				user_agent: `velox-browser-test JsSIP/${JsSIP.version}`,
				connection_recovery_min_interval: 2,
				connection_recovery_max_interval: 30,
				no_answer_timeout: Math.ceil(t.call / 1000),
			});
			if (mode === 'answer') {
				incoming = watchIncoming();
			}

			await step('connect', async () => {
				const w = waitEvent(ua, ['connected'], ['disconnected'], t.connect, `WebSocket ${o.wss}`);
				ua.start();
				await w;
				return `WebSocket open to ${o.wss}`;
			});

			await step('register', async () => {
				const challenges = countChallenges(/ REGISTER$/);
				const w = waitEvent(ua, ['registered'], ['registrationFailed', 'disconnected'], t.register, 'REGISTER');
				ua.register();
				let data;
				try {
					({ data } = await w);
				} finally {
					challenges.stop();
				}
				const r = data && data.response;
				if (!r) {
					return 'registered';
				}
				const contacts = r.getHeaders('Contact').length;
				const expires = /;\s*expires=(\d+)/i.exec(r.getHeader('Contact') || '');
				return `${r.status_code} ${r.reason_phrase}${challenges.text()}; ${contacts} binding(s)${expires ? `, expires=${expires[1]}` : ''}`;
			});

			if (mode === 'answer') {
				await answerSteps();
			} else {
				await step('call', async () => {
					const events = [];
					let sdpError = '';
					let finalResponse = '';
					let iceState = '';
					const opts = {
						mediaStream: stream,
						pcConfig: { iceServers: [], rtcpMuxPolicy: 'require', bundlePolicy: 'balanced' },
						eventHandlers: {
							progress: (e) => events.push(`progress ${e.response ? e.response.status_code : ''}`.trim()),
							accepted: (e) => {
								finalResponse = e.response ? `${e.response.status_code} ${e.response.reason_phrase}` : '';
								events.push('accepted');
							},
							confirmed: () => events.push('confirmed'),
							'peerconnection:setremotedescriptionfailed': (err) => {
								sdpError = (err && (err.message || err.name)) || String(err);
							},
							sdp: (e) => {
								if (e.originator === 'remote') {
									result.answerSdp = e.sdp;
								} else {
									result.offerSdp = e.sdp;
								}
							},
							peerconnection: (e) => {
								const pc = e.peerconnection;
								pc.addEventListener('iceconnectionstatechange', () => {
									iceState = pc.iceConnectionState;
									report('reportStep', { name: 'call', state: 'info', detail: `ICE ${iceState}` });
								});
							},
						},
					};
					const challenges = countChallenges(/ INVITE$/);
					session = ua.call(o.target, opts);
					try {
						await waitEvent(session, ['confirmed'], ['failed', 'ended'], t.call, `call to ${o.target}`);
					} catch (e) {
						if (sdpError) {
							e.message += ` - RTCPeerConnection.setRemoteDescription: ${sdpError}`;
						} else if (e.data && e.data.cause === JsSIP.C.causes.BAD_MEDIA_DESCRIPTION) {
							e.message += ' - the browser rejected the answer SDP';
						}
						throw e;
					} finally {
						challenges.stop();
					}
					const pc = session.connection;
					const remote = pc && pc.remoteDescription ? pc.remoteDescription.type : 'none';
					return `${finalResponse || '2xx'}${challenges.text()}, ACK sent; answer SDP accepted (remote description: ${remote}); events: ${events.join(', ')}`;
				});

				await step('hold', async () => {
					const w = waitEvent(session, [], ['ended', 'failed'], o.holdMs, 'call while held');
					try {
						await w;
					} catch (e) {
						if (!/timeout after/.test(e.message)) {
							throw e;
						}
					}
					if (!session.isEstablished()) {
						throw new Error('session no longer established');
					}
					return `established for ${o.holdMs} ms`;
				});

				await step('bye', async () => {
					const byeOk = waitSip((m) => m.dir === 'in' && / BYE$/.test(m.cseq) && /^SIP\/2\.0 [2-6]\d\d/.test(m.firstLine), t.bye, 'the final response to BYE');
					const ended = waitEvent(session, ['ended'], ['failed'], t.bye, 'hang-up');
					session.terminate();
					const e = await ended;
					const resp = await byeOk;
					if (!/^SIP\/2\.0 2\d\d/.test(resp.firstLine)) {
						throw new Error(`BYE answered: ${resp.firstLine}`);
					}
					return `session ended (cause ${e.data && e.data.cause}); BYE answered: ${resp.firstLine.slice(8)}`;
				});
			}

			await step('unregister', async () => {
				const w = waitEvent(ua, ['unregistered'], ['disconnected'], t.unregister, 'un-REGISTER');
				ua.unregister();
				const { data } = await w;
				if (data && data.cause) {
					throw new Error(`un-REGISTER failed: cause=${data.cause}${describe({ response: data.response })}`);
				}
				const r = data && data.response;
				if (!r || r.status_code < 200 || r.status_code >= 300) {
					throw new Error(`un-REGISTER answered ${r ? r.status_code : 'nothing'}`);
				}
				return `${r.status_code} ${r.reason_phrase}`;
			});

			await step('disconnect', async () => {
				const w = waitEvent(ua, ['disconnected'], [], t.disconnect, 'WebSocket close');
				ua.stop();
				ua = null;
				await w;
				return 'WebSocket closed';
			});

			result.ok = true;
		} catch (e) {
			result.failedStep = e.step || 'setup';
			result.error = (e && e.message) || String(e);
		} finally {
			if (ua) {
				try {
					ua.stop();
				} catch (_) {
					// ignore
				}
			}
			if (stream) {
				for (const tr of stream.getTracks()) {
					tr.stop();
				}
			}
		}
		return result;
	};
})();
