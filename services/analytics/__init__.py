"""Analytics API: timelines, summaries, moments, exports, live updates and the teacher dashboard."""
