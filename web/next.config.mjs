/** The dashboard is exported as static files and served by the service itself (one port). */
const config = {
  output: 'export',
  trailingSlash: true,
  images: { unoptimized: true },
  reactStrictMode: true,
  typescript: { tsconfigPath: 'tsconfig.json' },
};
export default config;
