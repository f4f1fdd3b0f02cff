// JS unit tests run in vitest browser mode in Debian chromium (software GL), the browser the
// end-to-end tests use. DQ_CHROMIUM overrides the executable.
import { defineConfig } from "vitest/config";
import { playwright } from "@vitest/browser-playwright";

const executablePath = process.env.DQ_CHROMIUM ?? "/usr/bin/chromium";

export default defineConfig({
  test: {
    include: ["js/**/*.test.ts"],
    browser: {
      enabled: true,
      headless: true,
      provider: playwright({
        launchOptions: {
          executablePath,
          args: ["--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run"],
        },
      }),
      instances: [{ browser: "chromium" }],
    },
  },
});
