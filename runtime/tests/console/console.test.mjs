// Browser test of the console page (run by runtime/tests/console.rs against a real server).
// Drives headless Chromium through the page the way an operator would: wrong key, right key,
// live connection count, watch "demo", publish through the publish box, see the message in
// the live feed. Exits 0 on success, 1 with a message naming the failed step otherwise.
//
// Env: WSE_URL (http://host:port), WSE_API_KEY, SCREENSHOT (png path), PLAYWRIGHT_DIR (a folder
// whose node_modules has playwright-core), WSE_EXPECT_CONNECTIONS (default 1).
import { createRequire } from 'node:module';
import path from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) fail(`environment variable ${name} is not set`);
  return value;
};
const URL_BASE = env('WSE_URL');
const API_KEY = env('WSE_API_KEY');
const SCREENSHOT = env('SCREENSHOT');
const PLAYWRIGHT_DIR = env('PLAYWRIGHT_DIR');
const EXPECT_CONNECTIONS = Number(process.env.WSE_EXPECT_CONNECTIONS || '1');
const STEP_TIMEOUT_MS = 15_000;
const TOTAL_TIMEOUT_MS = 120_000;

function fail(message) {
  console.error('console test FAILED: ' + message);
  process.exit(1);
}

const watchdog = setTimeout(() => fail(`no result after ${TOTAL_TIMEOUT_MS / 1000} s`), TOTAL_TIMEOUT_MS);

const require = createRequire(path.join(path.resolve(PLAYWRIGHT_DIR), 'package.json'));
const { chromium } = require('playwright-core');

let page = null;
let currentStep = 'launch chromium';
async function step(name, action) {
  currentStep = name;
  console.log('- ' + name);
  await action();
}

const text = (selector) => page.locator(selector).textContent();

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  timeout: 30_000,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const pageErrors = [];
try {
  page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.on('pageerror', (error) => pageErrors.push(error.message));

  await step('open /console', async () => {
    const response = await page.goto(URL_BASE + '/console', { timeout: STEP_TIMEOUT_MS });
    if (!response || response.status() !== 200) throw new Error(`GET /console answered ${response && response.status()}`);
    await page.locator('#api-key').waitFor({ state: 'visible' });
  });

  await step('a wrong API key is refused', async () => {
    await page.fill('#api-key', API_KEY + '-wrong');
    await page.click('#login button[type=submit]');
    await page.waitForFunction(() => document.getElementById('login-error').textContent.includes('refused'));
    if (!(await page.locator('#main').isHidden())) throw new Error('the dashboard is shown after a refused key');
  });

  await step('the right API key opens the dashboard', async () => {
    await page.fill('#api-key', API_KEY);
    await page.click('#login button[type=submit]');
    await page.waitForFunction(
      () =>
        document.getElementById('api-state').textContent === 'API: ok' ||
        document.getElementById('login-error').textContent !== '',
    );
    const refused = await text('#login-error');
    if (refused) throw new Error(`the page refused the key: ${refused}`);
    if (await page.locator('#main').isHidden()) throw new Error('the dashboard is hidden');
  });

  await step(`the connection count reaches ${EXPECT_CONNECTIONS} (the page's own WebSocket included)`, async () => {
    await page.waitForFunction(
      (n) => Number(document.getElementById('connections').textContent) >= n,
      EXPECT_CONNECTIONS,
    );
  });

  await step('the cluster card says this is a single node', async () => {
    await page.waitForFunction(() =>
      document.getElementById('cluster-state').textContent.startsWith('single node'),
    );
  });

  await step('watching "demo" subscribes the live feed', async () => {
    await page.fill('#topic', 'demo');
    await page.click('#watch button[type=submit]');
    await page.waitForFunction(() => document.getElementById('ws-state').textContent.includes('watching demo'));
  });

  await step('the topic table lists "demo" with a subscriber', async () => {
    await page.waitForFunction(() => {
      const row = document.querySelector('#topics tr[data-topic="demo"]');
      return row && Number(row.cells[1].textContent) >= 1;
    });
  });

  await step('the publish box shows an API error for data the API rejects', async () => {
    await page.fill('#pub-topic', 'demo');
    await page.fill('#pub-data', '42');
    await page.click('#publish button[type=submit]');
    await page.waitForFunction(() => document.getElementById('pub-result').textContent.startsWith('publish failed'));
    const result = await text('#pub-result');
    if (!result.includes('400')) throw new Error(`expected a 400 in the result, got: ${result}`);
  });

  await step('publishing {"t":"demo","p":{"n":1}} succeeds', async () => {
    await page.fill('#pub-data', '{"t":"demo","p":{"n":1}}');
    await page.click('#publish button[type=submit]');
    await page.waitForFunction(() => document.getElementById('pub-result').textContent.includes('"ok":true'));
  });

  await step('the message appears in the live feed', async () => {
    await page.waitForFunction(() =>
      [...document.querySelectorAll('#feed li')].some(
        (li) => li.textContent.includes('"t":"demo"') && li.textContent.includes('"n":1'),
      ),
    );
  });

  await step('the rate graph has been drawn', async () => {
    const painted = await page.evaluate(() => {
      const canvas = document.getElementById('rate-graph');
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      return pixels.some((value, i) => i % 4 === 3 && value !== 0);
    });
    if (!painted) throw new Error('the canvas is blank');
  });

  await step('save the screenshot', async () => {
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  if (pageErrors.length) {
    currentStep = 'no uncaught errors in the page';
    throw new Error(pageErrors.join('; '));
  }
  console.log('console test passed; screenshot: ' + SCREENSHOT);
} catch (error) {
  if (page) await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: 5_000 }).catch(() => {});
  const feedState = page ? await text('#ws-state').catch(() => '?') : '?';
  await browser.close().catch(() => {});
  fail(`step "${currentStep}": ${error.message.split('\n')[0]} (feed state: ${feedState}; screenshot: ${SCREENSHOT})`);
}
await browser.close();
clearTimeout(watchdog);
