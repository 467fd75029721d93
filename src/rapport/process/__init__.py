"""Process: turns raw events into computed traits and scores that marketers segment and personalise on."""
