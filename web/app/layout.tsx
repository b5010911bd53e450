import type { ReactNode } from 'react';
import 'uplot/dist/uPlot.min.css';
import './globals.css';

export const metadata = { title: 'runstate', description: 'Pipelines as state machines, live' };

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <header className="top">
          <a href="/" className="brand">runstate</a>
          <nav aria-label="Sections" className="top-nav">
            <a href="/">Runs</a> <a href="/workers/">Workers</a> <a href="/webhooks/">Webhooks</a> <a href="/schedules/">Schedules</a>
          </nav>
        </header>
        <main>{children}</main>
      </body>
    </html>
  );
}
