-- wrk: GET /v1/auth with the caller's API key (BENCH_API_KEY).
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY")
