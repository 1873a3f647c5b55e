"""cadre.train"""
