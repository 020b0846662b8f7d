-- wrk: POST /v2/token with a JSON body and the caller's API key (BENCH_API_KEY).
wrk.method = "POST"
wrk.body = '{"fileName": "cat.png", "fileSize": 48213, "mimeType": "image/png"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_API_KEY")
